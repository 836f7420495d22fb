"""Vendor KubeRay's CRD schemas: the ``openAPIV3Schema`` of each CRD's ``v1`` version, as JSON.

    python cluster/schemas/vendor_kuberay.py KUBERAY_CHECKOUT TAG

``KUBERAY_CHECKOUT`` is a clone of github.com/ray-project/kuberay at the release tag ``TAG``
(``git clone --depth 1 --branch v1.7.0 ...``). Writes ``cluster/schemas/kuberay-TAG/``:
``raycluster.v1.json`` and ``rayjob.v1.json`` (each schema exactly as the CRD gives it; KubeRay
generates its CRDs without descriptions already) and ``crds.json`` (group, version, kind, source
file and its sha256, the tag and the commit). Reads local files only; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import yaml

CRDS = {"raycluster.v1.json": "ray.io_rayclusters.yaml", "rayjob.v1.json": "ray.io_rayjobs.yaml"}
BASES = Path("ray-operator/config/crd/bases")
VERSION = "v1"


def vendor(checkout: Path, tag: str, out_root: Path) -> Path:
    """Write the schemas of ``checkout`` (at ``tag``) into ``out_root/kuberay-<tag>``; return that folder."""
    commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    out = out_root / f"kuberay-{tag}"
    out.mkdir(parents=True, exist_ok=True)
    index = {"kuberay": tag, "commit": commit, "crds": {}}
    for name, source in CRDS.items():
        raw = (checkout / BASES / source).read_bytes()
        crd = yaml.safe_load(raw)
        (version,) = [v for v in crd["spec"]["versions"] if v["name"] == VERSION]
        schema = version["schema"]["openAPIV3Schema"]
        (out / name).write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True) + "\n")
        index["crds"][name] = {"group": crd["spec"]["group"], "version": VERSION, "kind": crd["spec"]["names"]["kind"],
                               "source": str(BASES / source), "sha256": hashlib.sha256(raw).hexdigest()}
    (out / "crds.json").write_text(json.dumps(index, indent=2) + "\n")
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(vendor(Path(sys.argv[1]), sys.argv[2], Path(__file__).resolve().parent))
