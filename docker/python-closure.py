"""Lists what a Python console script needs to run in another root filesystem, one absolute path a line.

    python3 -I docker/python-closure.py SCRIPT [ARG...]

Run with the script's own interpreter (its shebang). It runs `SCRIPT ARG...` (e.g. `docker-compose version`)
in this process, then prints:

- the interpreter's standard library directory (scripts/build-images leaves out the parts no script needs);
- every top-level package or module of the third-party directories that the run imported, whole, so that a
  submodule imported later (by `up`, `scale`) is there too;
- the metadata directory of each distribution those belong to (console scripts find their entry point
  through it);
- the script itself.

scripts/build-images copies these paths at the same place into the autoscale image, with the interpreter
and the shared libraries ldd lists for it and for every extension module.
"""

import contextlib
import importlib.metadata
import io
import os
import runpy
import sys
import sysconfig


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: python3 -I python-closure.py SCRIPT [ARG...]", file=sys.stderr)
        return 2
    script = os.path.abspath(sys.argv[1])
    sys.argv = [script] + sys.argv[2:]
    out = io.StringIO()
    code = 0
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    if code != 0:
        print(f"{script} {' '.join(sys.argv[1:])} exited {code} on the host", file=sys.stderr)
        return 1

    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    site_dirs = sorted(
        {
            os.path.realpath(p)
            for p in sys.path
            if p and os.path.isdir(p) and os.path.realpath(p) != stdlib
            and not os.path.realpath(p).startswith(stdlib + os.sep + "lib-dynload")
            and (p.endswith("-packages") or os.sep + "site-packages" in p or os.sep + "dist-packages" in p)
        }
    )
    paths = {stdlib, script}
    tops = set()
    for module in list(sys.modules.values()):
        f = getattr(module, "__file__", None)
        if not f:
            continue
        f = os.path.realpath(f)
        for site in site_dirs:
            if f.startswith(site + os.sep):
                top = f[len(site) + 1 :].split(os.sep)[0]
                paths.add(os.path.join(site, top))
                tops.add(top.split(".")[0])
    owners = importlib.metadata.packages_distributions()
    wanted = {dist for top in tops for dist in owners.get(top, [])}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        path = getattr(dist, "_path", None)
        if name in wanted and path is not None:
            paths.add(os.path.realpath(str(path)))
    for p in sorted(paths):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
