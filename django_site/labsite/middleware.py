from django.conf import settings


def served_by(get_response):
    """Tag every response with the app server that made it (the balancer's tests read it)."""
    node = settings.LAB_NODE

    def middleware(request):
        response = get_response(request)
        response["X-Served-By"] = node
        return response

    return middleware


def content_length(get_response):
    """Send Content-Length, as CommonMiddleware would (without its URL checks).

    Without it Apache falls back to chunked encoding for HTTP/1.1 and has to close the
    connection after every response to an HTTP/1.0 client (nginx's default upstream).
    """

    def middleware(request):
        response = get_response(request)
        if not response.streaming and "Content-Length" not in response:
            response["Content-Length"] = len(response.content)
        return response

    return middleware
