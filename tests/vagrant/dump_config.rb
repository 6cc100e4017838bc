# Prints, as JSON, the Vagrant config of every machine as Vagrant itself evaluates the
# Vagrantfile (Vagrant's own loader, not a re-parse): used by tests/vagrant to compare it with
# topology.yaml and lab/provision.py environment(). Run: ruby dump_config.rb PROJECT_DIR
require "json"
require "rubygems"

# Activate vagrant and its dependencies the way bin/vagrant does.
spec = Gem::Specification.find_by_name("vagrant")
activate = proc do |s|
  s.runtime_dependencies.each do |dep|
    gem(dep.name, *dep.requirement.as_list)
    found = Gem::Specification.find_all_by_name(dep.name).detect(&:activated?)
    activate.call(found) if found
  end
end
activate.call(spec)
require "log4r"
require "vagrant"

env = Vagrant::Environment.new(cwd: ARGV.fetch(0), ui_class: Vagrant::UI::Silent)
provider = (ARGV[1] || "virtualbox").to_sym

def provisioner(prov)
  cfg = prov.config
  out = { "name" => prov.name&.to_s, "type" => prov.type.to_s }
  case prov.type
  when :file
    out.merge!("source" => cfg.source, "destination" => cfg.destination)
  when :shell
    out.merge!("inline" => cfg.inline, "path" => cfg.path, "privileged" => cfg.privileged,
               "env" => cfg.env.transform_keys(&:to_s).transform_values(&:to_s))
  end
  out
end

machines = env.machine_names.map do |name|
  loaded = env.vagrantfile.machine_config(name, provider, env.boxes, nil, false)
  vm = loaded[:config].vm
  vbox = vm.get_provider_config(:virtualbox)
  libvirt = vm.get_provider_config(:libvirt)
  providers = {
    # VirtualBox keeps memory and CPUs as 'VBoxManage modifyvm' customizations.
    "virtualbox" => { "name" => vbox.name,
                      "customize" => vbox.customizations.map { |event, cmd| [event, *cmd.map(&:to_s)] } },
    "libvirt" => { "memory" => libvirt.memory, "cpus" => libvirt.cpus },
  }
  {
    "name" => name.to_s,
    "box" => vm.box,
    "box_version" => vm.box_version,
    "hostname" => vm.hostname,
    "networks" => vm.networks.map { |type, opts| { "type" => type.to_s }.merge(opts.transform_keys(&:to_s)) },
    "synced_folders" => vm.synced_folders.map do |id, f|
      { "id" => id.to_s, "hostpath" => f[:hostpath], "guestpath" => f[:guestpath],
        "type" => f[:type]&.to_s, "disabled" => f[:disabled] ? true : false,
        "rsync__exclude" => f[:rsync__exclude] }
    end,
    "providers" => providers,
    "provisioners" => vm.provisioners.map { |p| provisioner(p) },
  }
end
puts JSON.pretty_generate({ "machines" => machines, "no_parallel" => ENV["VAGRANT_NO_PARALLEL"] })
