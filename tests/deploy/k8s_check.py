"""tests/deploy/k8s_check.py RENDERED.yaml OUTDIR - checks the objects that
`kubectl kustomize deploy/k8s` rendered against each other (tests/deploy/k8s.sh).

Prints "FAIL: why" and exits 1 at the first broken promise; on success
writes, for the live part of the test, OUTDIR/campaign.yaml (the rendered
campaign) and OUTDIR/probe (the master's probe command, one word a line)."""
import os
import sys

import yaml


def fail(why):
    print("FAIL: " + why)
    sys.exit(1)


def port_of(endpoint):
    return int(endpoint.rsplit(":", 1)[1])


def arg_after(args, flag):
    if flag not in args:
        fail("%s is not given %s: %s" % (args[0], flag, args))
    return args[args.index(flag) + 1]


def mount_dir(container, pod, path):
    """The volume of the pod mounted at the directory holding PATH."""
    for m in container.get("volumeMounts", []):
        if os.path.dirname(path) == m["mountPath"].rstrip("/"):
            return next(v for v in pod["volumes"] + [{"name": m["name"], "pvc": True}]
                        if v["name"] == m["name"])
    fail("nothing is mounted where %s is (container %s)" % (path, container["name"]))


def check_restricted(kind, pod):
    sc = pod.get("securityContext", {})
    if not sc.get("runAsNonRoot") or sc.get("runAsUser") != 10001:
        fail("%s does not run as the image's non-root user 10001" % kind)
    for c in pod.get("initContainers", []) + pod["containers"]:
        csc = c.get("securityContext", {})
        if csc.get("allowPrivilegeEscalation") is not False or \
                csc.get("capabilities", {}).get("drop") != ["ALL"] or \
                not csc.get("readOnlyRootFilesystem"):
            fail("%s container %s is not restricted" % (kind, c["name"]))
    if pod.get("terminationGracePeriodSeconds", 30) < 30:
        fail("%s leaves too little time to give tasks back" % kind)


def check_keys(kind, pod, container, bases, publics):
    """Every key the program reads sits in the memory directory that the
    init container fills from the Secret with mode 0600."""
    init = pod.get("initContainers", [])
    if not init or "install -m 0600" not in " ".join(init[0]["command"]):
        fail("%s copies no keys into place with mode 0600" % kind)
    dest = {m["mountPath"] for m in init[0]["volumeMounts"]}
    for path in [b + ".key_secret" for b in bases] + [b + ".key" for b in bases] + publics:
        vol = mount_dir(container, pod, path)
        if "emptyDir" not in vol or os.path.dirname(path) not in dest:
            fail("%s reads %s from outside the init container's key directory" % (kind, path))
    src = next(v for v in pod["volumes"] if v["name"] == next(
        m["name"] for m in init[0]["volumeMounts"] if m.get("readOnly")))
    if "secret" not in src:
        fail("%s's keys come from no Secret" % kind)


def main():
    docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
    by = {}
    for d in docs:
        by[(d["kind"], d["metadata"]["name"].split("-")[0] + "-" +
            d["metadata"]["name"].split("-")[1])] = d
    for want in [("ConfigMap", "nasd-campaign"), ("Service", "nasd-master"),
                 ("StatefulSet", "nasd-master"), ("Deployment", "nasd-worker")]:
        if want not in by:
            fail("the rendering lacks %s %s" % want)
    cm = by[("ConfigMap", "nasd-campaign")]
    campaign = yaml.safe_load(cm["data"]["campaign.yaml"])
    ports = {k: port_of(v) for k, v in campaign["listen"].items()}

    svc = by[("Service", "nasd-master")]
    sts = by[("StatefulSet", "nasd-master")]
    dep = by[("Deployment", "nasd-worker")]
    mpod = sts["spec"]["template"]["spec"]
    wpod = dep["spec"]["template"]["spec"]
    master = mpod["containers"][0]
    worker = wpod["containers"][0]
    margs, wargs = master["args"], worker["args"]

    # Ports: campaign = Service = container = what the workers dial.
    cports = {p["name"]: p["containerPort"] for p in master["ports"]}
    for p in svc["spec"]["ports"]:
        if p["port"] != ports[p["name"]] or cports.get(p["targetPort"]) != ports[p["name"]]:
            fail("Service port %s (%s -> %s) disagrees with the campaign's %d" %
                 (p["name"], p["port"], p["targetPort"], ports[p["name"]]))
    if set(p["name"] for p in svc["spec"]["ports"]) != set(ports):
        fail("the Service does not expose every listen port of the campaign")
    sel = svc["spec"]["selector"]
    if any(sts["spec"]["template"]["metadata"]["labels"].get(k) != v for k, v in sel.items()):
        fail("the Service's selector does not pick the master's pod")
    for flag, name in (("--master", "control"), ("--weights", "weights")):
        ep = arg_after(wargs, flag)
        if ep != "tcp://%s:%d" % (svc["metadata"]["name"], ports[name]):
            fail("workers dial %s %s, not the Service's %s port %d" % (flag, ep, name, ports[name]))
    for a in campaign["listen"].values():
        if "127.0.0.1" in a:
            fail("the campaign listens on loopback only: %s" % a)

    # The campaign file is the ConfigMap; the store is on the PVC.
    cfile = margs[1]
    vol = mount_dir(master, mpod, cfile)
    if vol.get("configMap", {}).get("name") != cm["metadata"]["name"] or \
            os.path.basename(cfile) not in cm["data"]:
        fail("the master's campaign %s is not the generated ConfigMap" % cfile)
    db = arg_after(margs, "--db")
    vol = mount_dir(master, mpod, db)
    claims = [t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])]
    if not vol.get("pvc") or vol["name"] not in claims:
        fail("the master's database %s is not on the PersistentVolumeClaim" % db)
    if sts["spec"]["replicas"] != 1:
        fail("more than one master would share one campaign database")
    auth = arg_after(margs, "--authorized")
    if not any(m["mountPath"] == auth and any(v["name"] == m["name"] and "secret" in v
                                              for v in mpod["volumes"])
               for m in master["volumeMounts"]):
        fail("the master's authorized directory %s is no Secret" % auth)
    if "--cancel-on-stop" not in margs:
        fail("a stopped master pod would wait for its leases instead of re-queueing them")

    check_keys("the master", mpod, master, [arg_after(margs, "--key")], [])
    check_keys("a worker", wpod, worker, [arg_after(wargs, "--key")],
               [arg_after(wargs, "--master-key")])
    check_restricted("the master", mpod)
    check_restricted("a worker", wpod)

    # Probes: nasctl status against the campaign's status port, with keys
    # that the pod has.
    for kind in ("readinessProbe", "livenessProbe"):
        cmd = master.get(kind, {}).get("exec", {}).get("command")
        if not cmd or cmd[:2] != ["nasctl", "status"]:
            fail("the master's %s is not `nasctl status`" % kind)
        if port_of(arg_after(cmd, "--master")) != ports["status"]:
            fail("the master's %s asks port %s, not the status port %d" %
                 (kind, arg_after(cmd, "--master"), ports["status"]))
        check_keys("the master's " + kind, mpod, master, [arg_after(cmd, "--key")],
                   [arg_after(cmd, "--master-key")])
    # The worker's liveness probe reads the health file its arguments
    # make it write, in a folder the pod can write.
    wprobe = worker.get("livenessProbe", {}).get("exec", {}).get("command")
    if not wprobe or wprobe[:2] != ["nas-worker", "--check"]:
        fail("a worker's livenessProbe is not `nas-worker --check`")
    if arg_after(wprobe, "--check") != arg_after(wargs, "--health-file"):
        fail("a worker's probe reads %s but it writes --health-file %s" %
             (arg_after(wprobe, "--check"), arg_after(wargs, "--health-file")))
    hdir = os.path.dirname(arg_after(wargs, "--health-file"))
    if not any(m["mountPath"] == hdir for m in worker["volumeMounts"]):
        fail("a worker writes its health file in %s, which is not a writable volume" % hdir)
    req = worker.get("resources", {}).get("requests", {})
    if "cpu" not in req or "memory" not in req:
        fail("workers request no CPU or memory")
    if str(req["cpu"]) != arg_after(wargs, "--threads"):
        fail("a worker announces %s threads but requests %s CPUs" %
             (arg_after(wargs, "--threads"), req["cpu"]))

    with open(os.path.join(sys.argv[2], "campaign.yaml"), "w") as f:
        f.write(cm["data"]["campaign.yaml"])
    with open(os.path.join(sys.argv[2], "probe"), "w") as f:
        f.write("\n".join(master["readinessProbe"]["exec"]["command"]) + "\n")
    print("rendered objects agree: ports %s, store %s on the PVC" % (ports, db))


main()
