"""The cluster launchers are checked, not just written: cluster/ against the real schemas and CLIs.

No Ray is started and nothing is fetched. ``cluster/ray-cluster.yaml`` is validated against the
JSON schema in the installed ``ray`` package and by Ray's own config checks; each KubeRay
manifest's ``spec`` against the CRD schema of KubeRay's release vendored in ``cluster/schemas``
(read the way the API server reads a structural schema: objects closed to unknown fields). Every
``python -m tuner.search`` command in the manifests, ``submit.sh``, the launcher config and
``cluster/README.md`` goes through the search's own ``main`` up to where it would start Ray; every
``ray start`` (KubeRay's, generated from the manifests as the operator does, included) and every
``ray ...`` command of the README through Ray's own click commands. A deliberately broken copy
fails each schema, so these checks can fail.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import ray
import yaml
from packaging.requirements import Requirement
from ray.scripts.scripts import cli as ray_cli
from ray.scripts.scripts import start as ray_start

import tuner.search.cli as search_cli
from tuner.search.plan import resolve_run

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
KUBERAY_VERSION = "v1.7.0"
SCHEMAS = CLUSTER / "schemas" / f"kuberay-{KUBERAY_VERSION}"
LAUNCHER = CLUSTER / "ray-cluster.yaml"
MANIFESTS = {"RayCluster": CLUSTER / "kuberay-raycluster.yaml", "RayJob": CLUSTER / "kuberay-rayjob.yaml"}
SCHEMA_FILES = {"RayCluster": "raycluster.v1.json", "RayJob": "rayjob.v1.json"}
# RayJob.spec.submissionMode is a plain string in the CRD; these are the modes KubeRay v1.7.0's
# operator knows (ray-operator/apis/ray/v1/rayjob_types.go)
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}
PUNCTUATION = set(";&|()<>")


# --- reading the files -------------------------------------------------------------------------

def yaml_documents(path: Path) -> list[dict[str, Any]]:
    """The non-empty YAML documents of ``path``."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def manifest(kind: str) -> dict[str, Any]:
    """The one object of ``kind`` in its manifest."""
    (found,) = [d for d in yaml_documents(MANIFESTS[kind]) if d.get("kind") == kind]
    return found


def cluster_spec(kind: str) -> dict[str, Any]:
    """The RayCluster spec of a manifest: the RayCluster's own, or the RayJob's rayClusterSpec."""
    spec = manifest(kind)["spec"]
    return spec if kind == "RayCluster" else spec["rayClusterSpec"]


def shell_words(text: str) -> list[str]:
    """``text`` split as a POSIX shell would, with ``;``, ``&&``, ``|``, ``(``, ... as their own words."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def command_lines() -> Iterator[tuple[str, str]]:
    """(where, line) of every shell command cluster/ shows: README code blocks, comments, submit.sh's lines.

    Lines continued with a backslash are joined; a comment line counts when it starts with a
    command (the usage lines at the top of the YAML files and submit.sh).
    """
    readme = (CLUSTER / "README.md").read_text().split("```")
    blocks = [b.split("\n", 1)[1] for b in readme[1::2] if b.startswith(("bash", "sh"))]
    sources = [("cluster/README.md", b) for b in blocks]
    for path in (LAUNCHER, *MANIFESTS.values(), CLUSTER / "submit.sh"):
        comments = [m.group(1) for m in re.finditer(r"^\s*#\s*(.*)$", path.read_text(), re.M)]
        sources.append((f"cluster/{path.name} (comments)", "\n".join(c for c in comments if _is_command(c))))
    body = [ln for ln in (CLUSTER / "submit.sh").read_text().splitlines() if not ln.lstrip().startswith("#")]
    sources.append(("cluster/submit.sh", "\n".join(body)))
    for where, text in sources:
        for line in text.replace("\\\n", " ").splitlines():
            if line.strip():
                yield where, line.strip()


def until_operator(words: list[str]) -> list[str]:
    """The words of one simple command: up to the first ``;``, ``&&``, ``|``, ``)``, ``>``, ..."""
    end = next((i for i, w in enumerate(words) if set(w) <= PUNCTUATION), len(words))
    return words[:end]


def _is_command(text: str) -> bool:
    return bool(re.match(r"(\(umask |(\.venv/bin/)?(ray|python|kubectl|docker|sed|ssh) )", text))


def search_invocations(words: list[str]) -> Iterator[list[str]]:
    """The argument lists of every ``python -m tuner.search`` in a shell command's words (quoted ones too)."""
    for i, word in enumerate(words):
        if " " in word and "tuner.search" in word:  # a command passed as one quoted word (ray exec "...")
            yield from search_invocations(shell_words(word))
        if word == "tuner.search" and i >= 2 and words[i - 1] == "-m" and "python" in words[i - 2]:
            yield until_operator(words[i + 1:])


def submit_sh_arguments() -> list[str]:
    """The fixed flags submit.sh passes before the caller's (its ``"$@"``), its $shared at its default."""
    ((_, line),) = [(w, ln) for w, ln in command_lines() if w == "cluster/submit.sh" and "tuner.search" in ln]
    (args,) = search_invocations(shell_words(line))
    assert args[-1] == "$@", f"submit.sh should pass the caller's flags last: {line}"
    (shared,) = re.findall(r'^shared="\$\{ROBUSTUNE_SHARED:-(\S+)\}"$', (CLUSTER / "submit.sh").read_text(), re.M)
    return [a.replace("$shared", shared) for a in args[:-1]]


def search_commands() -> list[tuple[str, list[str], bool]]:
    """(where, argv, on a cluster) of every search command cluster/ shows or runs.

    submit.sh's once with each usage's flags (``ray submit ... cluster/submit.sh -- FLAGS``). "On
    a cluster": the search the launchers submit (submit.sh, ``ray job submit``, the RayJob), which
    must join the cluster and keep its state on the shared storage.
    """
    found: list[tuple[str, list[str], bool]] = []
    for where, line in command_lines():
        words = shell_words(line)
        if where != "cluster/submit.sh":
            submitted = "job" in words and "submit" in words
            found += [(where, args, submitted) for args in search_invocations(words)]
        if "cluster/submit.sh" in words and "--" in words:
            flags = until_operator(words[words.index("--") + 1:])
            found.append((f"{where}: submit.sh --", submit_sh_arguments() + flags, True))
    found.append(("cluster/kuberay-rayjob.yaml: entrypoint", entrypoint_arguments(manifest("RayJob")), True))
    found.append(("cluster/README.md: the RayJob resumed", entrypoint_arguments(resumed_rayjob()), True))
    return found


def entrypoint_arguments(rayjob: dict[str, Any]) -> list[str]:
    (args,) = search_invocations(shell_words(rayjob["spec"]["entrypoint"]))
    return args


def resumed_rayjob() -> dict[str, Any]:
    """The RayJob that the README's resume recipe (``sed '...' cluster/kuberay-rayjob.yaml``) creates."""
    (expression,) = re.findall(r"sed '([^']+)' cluster/kuberay-rayjob\.yaml", (CLUSTER / "README.md").read_text())
    text = subprocess.run(["sed", expression, str(MANIFESTS["RayJob"])], check=True, capture_output=True,
                          text=True).stdout
    (job,) = [d for d in yaml.safe_load_all(text) if d]
    return job


def ray_invocations() -> list[tuple[str, list[str]]]:
    """(where, argv after ``ray``) of every ``ray ...`` command (``VAR=value`` prefixes, ``.venv/bin/`` allowed)."""
    found = []
    for where, line in command_lines():
        words = shell_words(line)
        starts = [0] + [i + 1 for i, w in enumerate(words) if set(w) <= PUNCTUATION]
        for start in starts:
            segment = words[start:]
            while segment and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", segment[0]):
                segment = segment[1:]
            if segment and segment[0] in ("ray", ".venv/bin/ray"):
                found.append((where, until_operator(segment[1:])))
    return found


# --- the CLIs, without running anything --------------------------------------------------------

class _Parsed(Exception):
    """Raised by the stand-in for run_search: the command got as far as starting the search."""


def parse_search(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The SearchConfig ``python -m tuner.search ARGV`` would search with, its plan resolved; nothing run."""
    parser, _ = search_cli.build_parser()
    if "--status" in argv:  # --status reads the storage and exits before any search
        return parser.parse_args(argv)

    def stop(cfg: Any, command: str) -> None:
        resolve_run(cfg)  # every setting checked, as run_search does before Ray starts
        raise _Parsed(cfg)

    monkeypatch.setattr(search_cli, "run_search", stop)
    with pytest.raises(_Parsed) as parsed:
        search_cli.main(argv)
    return parsed.value.args[0]


def parse_ray(argv: list[str]) -> click.Context:
    """``ray ARGV`` parsed by Ray's own click commands (subcommand groups followed); nothing run."""
    command: click.Command = ray_cli
    name, args = "ray", list(argv)
    while isinstance(command, click.Group):
        assert args, f"`ray {' '.join(argv)}` names no command"
        child = command.get_command(click.Context(command, info_name=name), args[0])
        assert child is not None, f"`ray {' '.join(argv)}`: Ray has no command {args[0]!r}"
        command, name, args = child, args[0], args[1:]
    context = command.make_context(name, args)
    for param in command.params:  # `ray submit` takes unknown options: a misspelt one lands in a positional
        value = context.params.get(param.name)
        if isinstance(param, click.Argument) and isinstance(value, str):
            assert not value.startswith("-"), f"`ray {' '.join(argv)}` takes {value!r} for its {param.name}"
            if param.name in ("cluster_config_file", "script"):
                assert (ROOT / value).is_file(), f"`ray {' '.join(argv)}`: no file {value}"
    return context


def kuberay_ray_start(group: dict[str, Any], head: bool) -> list[str]:
    """The ``ray start`` arguments KubeRay v1.7.0 makes for a head or worker group.

    As ray-operator/controllers/ray/common/pod.go does: its defaults (setMissingRayStartParams),
    num-cpus, memory and num-gpus from the Ray container's limits (generateRayStartCommand), and
    ``--key=value`` per parameter, ``--key`` for "true", nothing for "false" (convertParamMap).
    """
    params = dict(group.get("rayStartParams", {}))
    if head:
        params.setdefault("dashboard-host", "0.0.0.0")
    else:
        params.setdefault("address", "robustune-head-svc.default.svc.cluster.local:6379")
    params.setdefault("metrics-export-port", "8080")
    params["block"] = "true"
    params.setdefault("dashboard-agent-listen-port", "52365")
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    params.setdefault("num-cpus", str(int(quantity(limits["cpu"]))))
    params.setdefault("memory", str(int(quantity(limits["memory"]))))
    if "nvidia.com/gpu" in limits:
        params.setdefault("num-gpus", str(limits["nvidia.com/gpu"]))
    args = ["--head"] if head else []
    for key in sorted(params):
        value = str(params[key])
        if value.lower() in ("true", "false") and key not in ("log-color", "include-dashboard", "include-log-monitor"):
            args += [f"--{key}"] if value.lower() == "true" else []
        else:
            args.append(f"--{key}={value}")
    return args


def quantity(text: str | int) -> float:
    """A Kubernetes quantity ("8", "500m", "32Gi") as a number."""
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text))
    assert match and match.group(2) in ("", *units), f"not a quantity: {text!r}"
    return float(match.group(1)) * units.get(match.group(2), 1)


# --- the schemas -------------------------------------------------------------------------------

@cache
def ray_launcher_schema() -> dict[str, Any]:
    return json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


def structural_to_json_schema(node: Any) -> Any:
    """A Kubernetes structural schema as a JSON Schema, read as the API server reads it.

    An object with ``properties`` takes no other field (the API server rejects unknown fields,
    ``kubectl apply`` validates strictly) unless ``x-kubernetes-preserve-unknown-fields``;
    ``x-kubernetes-int-or-string`` is an integer or a string; ``nullable`` admits null. Other
    ``x-kubernetes-*`` keys (list and map types, CEL rules) are dropped: they are not checked here.
    """
    if isinstance(node, list):
        return [structural_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):  # the keys here are field names, not keywords
            out[key] = {name: structural_to_json_schema(sub) for name, sub in value.items()}
        elif key == "default":
            out[key] = value
        elif not key.startswith("x-kubernetes-") and key != "nullable":
            out[key] = structural_to_json_schema(value)
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    closed = "properties" in out and "additionalProperties" not in out
    if closed and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("int32")
def _int32(value: Any) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@FORMATS.checks("int64")
def _int64(value: Any) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


@cache
def crd_index() -> dict[str, Any]:
    return json.loads((SCHEMAS / "crds.json").read_text())


@cache
def spec_validator(kind: str) -> jsonschema.Draft7Validator:
    """A validator of ``kind``'s ``spec`` from the vendored CRD schema."""
    schema = json.loads((SCHEMAS / SCHEMA_FILES[kind]).read_text())
    spec = structural_to_json_schema(schema["properties"]["spec"])
    jsonschema.Draft7Validator.check_schema(spec)
    return jsonschema.Draft7Validator(spec, format_checker=FORMATS)


def spec_errors(kind: str, spec: dict[str, Any]) -> list[str]:
    return [f"spec.{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in spec_validator(kind).iter_errors(spec)]


# --- the launcher config -----------------------------------------------------------------------

def launcher_config() -> dict[str, Any]:
    return yaml.safe_load(LAUNCHER.read_text())


def test_launcher_config_passes_rays_schema_and_checks() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = launcher_config()
    jsonschema.validate(config, ray_launcher_schema())
    validate_config(prepare_config(copy.deepcopy(config)))  # what `ray up` does before it launches anything
    assert config["head_node_type"] in config["available_node_types"]


@pytest.mark.parametrize("breakage", ["unknown field", "wrong type", "node type without resources"])
def test_rays_schema_fails_a_broken_launcher_config(breakage: str) -> None:
    config = launcher_config()
    if breakage == "unknown field":
        config["head_start_commands"] = config.pop("head_start_ray_commands")  # a typo
    elif breakage == "wrong type":
        config["max_workers"] = "6"
    else:
        del config["available_node_types"]["gpu_worker"]["resources"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, ray_launcher_schema())


def test_launcher_keeps_the_dashboard_local_and_tokens_on() -> None:
    config = launcher_config()
    starts = [ray_start.make_context("start", args).params for args in launcher_ray_starts(config)]
    heads = [p for p in starts if p["head"]]
    assert len(heads) == 1 and heads[0]["dashboard_host"] == "127.0.0.1"
    for command in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        if "ray start" in command:
            assert "RAY_AUTH_MODE=token" in command, command
    assert "~/.ray/auth_token" in config["file_mounts"]
    assert config["available_node_types"][config["head_node_type"]]["resources"] == {"CPU": 0, "GPU": 0}


def launcher_ray_starts(config: dict[str, Any]) -> list[list[str]]:
    """The arguments of every ``ray start`` in the launcher config's start commands."""
    found = []
    for command in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        words = shell_words(command)
        for i, word in enumerate(words):
            if word == "ray" and words[i + 1:i + 2] == ["start"]:
                found.append(until_operator(words[i + 2:]))
    return found


def test_launcher_ray_start_commands_are_rays() -> None:
    starts = launcher_ray_starts(launcher_config())
    assert len(starts) == 2
    for args in starts:
        ray_start.make_context("start", args)  # click.NoSuchOption / BadParameter on a flag Ray lacks


# --- the KubeRay manifests ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(MANIFESTS))
def test_kuberay_manifest_matches_its_crd(kind: str) -> None:
    crd = crd_index()["crds"][SCHEMA_FILES[kind]]
    assert crd_index()["kuberay"] == KUBERAY_VERSION
    obj = manifest(kind)
    assert obj["apiVersion"] == f"{crd['group']}/{crd['version']}" and obj["kind"] == crd["kind"]
    assert set(obj) <= {"apiVersion", "kind", "metadata", "spec"}
    assert spec_errors(kind, obj["spec"]) == []


BREAKAGES = {
    "unknown field": lambda spec: spec["headGroupSpec"].update(rayStartParam={}),  # a typo of rayStartParams
    "wrong type": lambda spec: spec["workerGroupSpecs"][0].update(replicas="1"),
    "unknown container field": lambda spec: spec["headGroupSpec"]["template"]["spec"]["containers"][0].update(
        imagePulPolicy="Always"),
    "missing required field": lambda spec: spec["workerGroupSpecs"][0].pop("groupName"),
    "int32 out of range": lambda spec: spec["workerGroupSpecs"][0].update(maxReplicas=2**31),
}


@pytest.mark.parametrize("kind", sorted(MANIFESTS))
@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_crd_schema_fails_a_broken_manifest(kind: str, breakage: str) -> None:
    spec = copy.deepcopy(manifest(kind)["spec"])
    BREAKAGES[breakage](spec if kind == "RayCluster" else spec["rayClusterSpec"])
    assert spec_errors(kind, spec), f"the {kind} schema took a spec with a {breakage}"


def test_rayjob_schema_fails_a_broken_job_field() -> None:
    spec = copy.deepcopy(manifest("RayJob")["spec"])
    spec["shutdownAfterJobFinishes"] = "yes"
    spec["ttlSecondAfterFinished"] = 600
    errors = spec_errors("RayJob", spec)
    assert any("shutdownAfterJobFinishes" in e for e in errors) and any("ttlSecondAfterFinished" in e for e in errors)


def test_rayjob_runs_on_the_rayclusters_cluster() -> None:
    """The RayJob's cluster is the RayCluster but for the dashboard's address, which the operator must reach."""
    job, standing = manifest("RayJob")["spec"], cluster_spec("RayCluster")
    own = copy.deepcopy(job["rayClusterSpec"])
    assert standing["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "127.0.0.1"
    assert own["headGroupSpec"]["rayStartParams"].pop("dashboard-host") == "0.0.0.0"
    standing = copy.deepcopy(standing)
    standing["headGroupSpec"]["rayStartParams"].pop("dashboard-host")
    assert own == standing
    assert job["submissionMode"] in SUBMISSION_MODES - {"InteractiveMode"}  # KubeRay submits the entrypoint
    assert job["shutdownAfterJobFinishes"] is True and job["ttlSecondsAfterFinished"] > 0


@pytest.mark.parametrize("kind", sorted(MANIFESTS))
def test_kuberay_cluster_is_private_and_shares_storage(kind: str) -> None:
    spec = cluster_spec(kind)
    assert spec["authOptions"] == {"mode": "token"}
    head = spec["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP" and not head.get("enableIngress", False)
    assert head["rayStartParams"]["num-cpus"] == "0" and head["rayStartParams"]["num-gpus"] == "0"
    claims = {d["metadata"]["name"]: d for d in yaml_documents(MANIFESTS["RayCluster"])
              if d["kind"] == "PersistentVolumeClaim"}
    for group in [head, *spec["workerGroupSpecs"]]:
        pod = group["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        claim = mounts["/shared"]["persistentVolumeClaim"]["claimName"]
        assert claims[claim]["spec"]["accessModes"] == ["ReadWriteMany"], "every pod mounts /shared: RWX"
        assert pod["securityContext"]["runAsNonRoot"] is True
    (head_container,) = head["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in head_container["env"]}
    key_volume = {m["mountPath"]: m["name"] for m in head_container["volumeMounts"]}[str(Path(
        env["ROBUSTUNE_KEY_FILE"]).parent)]
    assert any(v["name"] == key_volume and "secret" in v for v in head["template"]["spec"]["volumes"])


@pytest.mark.parametrize("kind", sorted(MANIFESTS))
def test_kuberays_ray_start_commands_are_rays(kind: str) -> None:
    spec = cluster_spec(kind)
    head = ray_start.make_context("start", kuberay_ray_start(spec["headGroupSpec"], head=True)).params
    assert head["head"] and head["num_cpus"] == 0 and head["num_gpus"] == 0
    for group in spec["workerGroupSpecs"]:
        worker = ray_start.make_context("start", kuberay_ray_start(group, head=False)).params
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert worker["num_gpus"] == int(limits["nvidia.com/gpu"]) and not worker["head"]


# --- versions: the image, the venv, the manifests ----------------------------------------------

def dockerfile_base() -> str:
    """The Dockerfile's FROM image with its ARG defaults filled in."""
    text = (CLUSTER / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    (base,) = re.findall(r"^FROM (\S+)", text, re.M)
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)


def test_image_matches_the_venv_and_the_manifests() -> None:
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    expected = f"rayproject/ray:{ray.__version__}-{python}-gpu"
    assert dockerfile_base() == expected
    assert launcher_config()["docker"]["image"] == expected
    assert f'"ray[default,tune]=={ray.__version__}"' in launcher_config()["setup_commands"][0]
    project = _pyproject()["project"]
    (ray_req,) = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "ray"]
    assert ray_req.specifier.contains(ray.__version__)
    images = set()
    for kind in MANIFESTS:
        spec = cluster_spec(kind)
        assert spec["rayVersion"] == ray.__version__
        for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
            images |= {c["image"] for c in group["template"]["spec"]["containers"]}
    assert images == {f"robustune:{project['version']}"}


def test_image_installs_every_package() -> None:
    """The Dockerfile copies, and .dockerignore lets through, every package pyproject installs."""
    text = (CLUSTER / "Dockerfile").read_text()
    ignore = (ROOT / ".dockerignore").read_text().split()
    tool = _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in tool}
    copied = set()
    for line in re.findall(r"^COPY (.*)$", text, re.M):
        *sources, _ = [w for w in line.split() if not w.startswith("--")]
        copied |= {s.rstrip("/") for s in sources}
    for name in packages | {"pyproject.toml", "README.md"}:
        assert name in copied, f"cluster/Dockerfile does not copy {name}"
        assert f"!{name}" in ignore or f"!{name}/" in ignore, f".dockerignore keeps {name} out of the build"


def _pyproject() -> dict[str, Any]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# --- the commands ------------------------------------------------------------------------------

SEARCHES = search_commands()


@pytest.mark.parametrize(("where", "argv", "on_cluster"), SEARCHES,
                         ids=[f"{w}: ...{' '.join(a)[-50:]}" for w, a, _ in SEARCHES])
def test_search_command_parses(where: str, argv: list[str], on_cluster: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse_search(argv, monkeypatch)
    if on_cluster:  # joins the cluster, its state where every node and the next head see it
        assert cfg.address == "auto" and not cfg.live, where
        assert cfg.storage_path.endswith("/shared/runs") and cfg.export_dir.endswith("/shared/exports"), where
        assert cfg.data_dir.endswith("/shared/data") and cfg.study_storage == "journal", where


def test_every_launcher_is_covered() -> None:
    where = {w.split(":")[0] for w, _, on_cluster in SEARCHES if on_cluster}
    assert {"cluster/kuberay-rayjob.yaml", "cluster/README.md", "cluster/ray-cluster.yaml (comments)"} <= where
    assert any("submit.sh" in w for w, _, _ in SEARCHES)


def test_resumed_rayjob_resumes_the_same_experiment(monkeypatch: pytest.MonkeyPatch) -> None:
    first, again = manifest("RayJob"), resumed_rayjob()
    assert spec_errors("RayJob", again["spec"]) == []
    started = parse_search(entrypoint_arguments(first), monkeypatch)
    resumed = parse_search(entrypoint_arguments(again), monkeypatch)
    assert resumed.resume and not started.resume
    assert resumed.folder.path == started.folder.path


RAY_COMMANDS = ray_invocations()


@pytest.mark.parametrize(("where", "argv"), RAY_COMMANDS, ids=[f"{w}: ray {' '.join(a)[:60]}" for w, a in RAY_COMMANDS])
def test_ray_command_is_rays_cli(where: str, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the commands name files from the repository root
    parse_ray(argv)


def test_ray_cli_check_fails_a_wrong_command() -> None:
    with pytest.raises(click.NoSuchOption):
        parse_ray(["start", "--head", "--dashbord-host=127.0.0.1"])
    with pytest.raises(AssertionError):
        parse_ray(["dashbord", "cluster/ray-cluster.yaml"])
    with pytest.raises(AssertionError):
        parse_ray(["submit", "--tmuxx", "cluster/ray-cluster.yaml", "cluster/submit.sh", "--", "--space", "lwta"])
    with pytest.raises(AssertionError):
        parse_ray(["up", "-y", "cluster/ray-clustr.yaml"])
