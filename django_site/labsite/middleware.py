from django.conf import settings


def served_by(get_response):
    """Tag every response with the app server that made it (the balancer's tests read it)."""
    node = settings.LAB_NODE

    def middleware(request):
        response = get_response(request)
        response["X-Served-By"] = node
        return response

    return middleware
