"""The install is pinned: requirements.txt pins every package, constraints.txt pins
the whole transitive set at the same versions, and CI and the Dockerfile use both."""
import re

from support import ROOT


def pins(path):
    out = {}
    for line in (ROOT / path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([0-9][0-9A-Za-z.+\-]*)", line)
        assert m, f"{path}: {line!r} is not pinned with =="
        out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_requirements_and_constraints_pin_the_same_versions():
    req, con = pins("requirements.txt"), pins("constraints.txt")
    assert req and len(con) > len(req)
    for name, version in req.items():
        assert con.get(name) == version, f"{name}: requirements {version}, constraints {con.get(name)}"


def test_ci_and_docker_install_with_the_constraints():
    assert "-r requirements.txt -c constraints.txt" in (ROOT / ".ci" / "run").read_text()
    docker = (ROOT / "Dockerfile").read_text()
    assert "-r requirements.txt -c constraints.txt" in docker and "constraints.txt ./" in docker
