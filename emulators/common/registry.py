"""The local image registry shared by the emulators (Cloud Build writes it; Vertex AI and Cloud Run read it).

An "image" is a snapshot, not a container: the files the Dockerfile's COPY/ADD instructions put into the
image (taken from the build context, or from an earlier stage or a base image in this registry), plus the
configuration a runtime needs — WORKDIR, ENV, ENTRYPOINT, CMD, USER, EXPOSE, LABEL. ``RUN`` instructions are
recorded but not executed: the emulators run commands with the venv's interpreter, so dependencies come
from the venv. Every image has a content digest (``sha256:...``) and any number of names (``repo:tag``).

Layout of ``LOCAL_REGISTRY_DIR``::

    index.json                     {"tags": {"repo:tag": "sha256:..."}}
    images/<hex>/config.json       the ImageRecord fields
    images/<hex>/rootfs/...        the image's files

Several processes share the folder; index updates hold an exclusive ``fcntl`` lock on ``.lock``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class RegistryError(RuntimeError):
    """The image reference is unknown or the build cannot be recorded; the message says why."""


class DockerfileError(RegistryError):
    """The Dockerfile uses something the emulated build cannot do."""


# -- references -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    repository: str
    tag: str | None
    digest: str | None

    @property
    def tagged(self) -> str:
        return f"{self.repository}:{self.tag or 'latest'}"


def parse_reference(reference: str) -> Reference:
    """``host:5000/repo/img:tag@sha256:…`` → parts (the tag follows the last ``:`` after the last ``/``)."""
    text = reference.strip()
    if not text or any(char.isspace() for char in text):
        raise RegistryError(f"invalid image reference {reference!r}")
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise RegistryError(f"invalid digest in image reference {reference!r}")
    tag = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1 :]
        if not re.fullmatch(r"[\w][\w.-]{0,127}", tag):
            raise RegistryError(f"invalid tag in image reference {reference!r}")
    if not text:
        raise RegistryError(f"invalid image reference {reference!r}")
    return Reference(repository=text, tag=tag, digest=digest)


# -- Dockerfile -------------------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    value: str
    line: int


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions: comments dropped, continuation lines joined."""
    escape = "\\"
    lines = text.splitlines()
    for raw in lines:
        directive = re.match(r"^#\s*escape\s*=\s*(\S)\s*$", raw.strip(), re.IGNORECASE)
        if directive:
            escape = directive.group(1)
            break
        if raw.strip() and not raw.strip().startswith("#"):
            break
    instructions: list[Instruction] = []
    buffer = ""
    start = 0
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue  # comment lines inside a continuation are dropped
        if not buffer:
            start = number
        if stripped.endswith(escape):
            buffer += stripped[: -len(escape)].rstrip() + " "
            continue
        buffer += stripped
        keyword, _, value = buffer.partition(" ")
        instructions.append(Instruction(keyword=keyword.upper(), value=value.strip(), line=start))
        buffer = ""
    if buffer.strip():
        keyword, _, value = buffer.strip().partition(" ")
        instructions.append(Instruction(keyword=keyword.upper(), value=value.strip(), line=start))
    return instructions


_VAR = re.compile(r"\\\$|\$\{(\w+)(?::([-+])([^}]*))?\}|\$(\w+)")


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Dockerfile variable expansion: ``$V``, ``${V}``, ``${V:-default}``, ``${V:+alt}``, ``\\$`` escapes."""

    def replace(found: re.Match[str]) -> str:
        if found.group(0) == "\\$":
            return "$"
        name = found.group(1) or found.group(4)
        value = variables.get(name, "")
        if found.group(2) == "-":
            return value or (found.group(3) or "")
        if found.group(2) == "+":
            return (found.group(3) or "") if value else ""
        return value

    return _VAR.sub(replace, text)


def _exec_or_shell(value: str, shell: list[str]) -> list[str]:
    stripped = value.strip()
    if stripped.startswith("["):
        try:
            parsed = json.loads(stripped)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return parsed
    return [*shell, stripped]


def _split_words(value: str) -> list[str]:
    import shlex

    return shlex.split(value)


def _key_values(value: str, keyword: str, line: int) -> dict[str, str]:
    words = _split_words(value)
    if not words:
        raise DockerfileError(f"line {line}: {keyword} needs an argument")
    if "=" not in words[0]:
        # Legacy form: ``ENV KEY value with spaces``.
        key, _, rest = value.strip().partition(" ")
        return {key: " ".join(_split_words(rest)) if rest.strip() else ""}
    pairs: dict[str, str] = {}
    for word in words:
        if "=" not in word:
            raise DockerfileError(f"line {line}: {keyword} expects KEY=VALUE, got {word!r}")
        key, _, val = word.partition("=")
        pairs[key] = val
    return pairs


@dataclass
class CopyOp:
    sources: list[str]
    dest: str  # absolute path inside the image
    from_stage: str | None
    add: bool
    line: int


@dataclass
class Stage:
    name: str | None
    base: str
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    user: str = ""
    expose: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    shell: list[str] = field(default_factory=lambda: ["/bin/sh", "-c"])
    copies: list[CopyOp] = field(default_factory=list)
    skipped_run: list[str] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)


_IGNORED = {"VOLUME", "STOPSIGNAL", "HEALTHCHECK", "ONBUILD", "MAINTAINER"}


BaseResolver = Callable[[str], "ImageRecord | None"]


def parse_dockerfile(
    text: str, build_args: Mapping[str, str] | None = None, base_resolver: BaseResolver | None = None
) -> list[Stage]:
    """Parse a Dockerfile into its stages (the last one is the image); raises DockerfileError.

    A stage starts from the configuration of its base: an earlier stage, or the image ``base_resolver``
    finds (an image of the local registry); any other base starts empty (WORKDIR ``/``, no ENV, no CMD).
    """
    build_args = dict(build_args or {})
    cmd_set_here = False
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in dockerfile_instructions(text):
        keyword, value, line = instruction.keyword, instruction.value, instruction.line
        stage = stages[-1] if stages else None
        if keyword == "ARG":
            name, has_default, default = value.partition("=")
            name = name.strip()
            scope = global_args if stage is None else {**global_args, **stage.env, **stage.args}
            if name in build_args:
                resolved = build_args[name]
            elif has_default:
                resolved = expand(default.strip().strip('"'), scope)
            else:
                resolved = global_args.get(name, "")
            (global_args if stage is None else stage.args)[name] = resolved
            continue
        if keyword == "FROM":
            words = [word for word in _split_words(expand(value, global_args)) if not word.startswith("--")]
            if not words:
                raise DockerfileError(f"line {line}: FROM needs an image")
            alias = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            new = Stage(name=alias, base=words[0])
            parent = next((item for item in stages if item.name and item.name == words[0]), None)
            if parent is not None:
                new.workdir, new.env, new.user = parent.workdir, dict(parent.env), parent.user
                new.entrypoint, new.cmd, new.shell = (
                    list(parent.entrypoint),
                    list(parent.cmd),
                    list(parent.shell),
                )
            elif base_resolver is not None and (image := base_resolver(words[0])) is not None:
                new.workdir, new.env, new.user = image.workdir, dict(image.env), image.user
                new.entrypoint, new.cmd = list(image.entrypoint), list(image.cmd)
            stages.append(new)
            cmd_set_here = False
            continue
        if stage is None:
            raise DockerfileError(f"line {line}: {keyword} before FROM")
        variables = {**stage.env, **stage.args}
        if keyword == "WORKDIR":
            path = expand(value, variables).strip()
            stage.workdir = os.path.normpath(
                path if path.startswith("/") else os.path.join(stage.workdir, path)
            )
        elif keyword == "ENV":
            for key, val in _key_values(value, keyword, line).items():
                stage.env[key] = expand(val, {**stage.env, **stage.args})
        elif keyword == "LABEL":
            stage.labels.update(
                {k: expand(v, variables) for k, v in _key_values(value, keyword, line).items()}
            )
        elif keyword == "ENTRYPOINT":
            stage.entrypoint = _exec_or_shell(value, stage.shell)
            if not cmd_set_here:
                stage.cmd = []  # Docker: setting ENTRYPOINT drops the CMD inherited from the base
        elif keyword == "CMD":
            stage.cmd = _exec_or_shell(value, stage.shell)
            cmd_set_here = True
        elif keyword == "USER":
            stage.user = expand(value, variables).strip()
        elif keyword == "EXPOSE":
            stage.expose.extend(expand(value, variables).split())
        elif keyword == "SHELL":
            parsed = _exec_or_shell(value, [])
            if len(parsed) < 1 or value.strip()[:1] != "[":
                raise DockerfileError(f"line {line}: SHELL must be in JSON form")
            stage.shell = parsed
        elif keyword == "RUN":
            stage.skipped_run.append(value)
        elif keyword in ("COPY", "ADD"):
            stage.copies.append(_copy_op(keyword, value, variables, stage.workdir, line))
        elif keyword in _IGNORED:
            continue
        else:
            raise DockerfileError(f"line {line}: unknown or unsupported instruction {keyword}")
    if not stages:
        raise DockerfileError("the Dockerfile has no FROM instruction")
    return stages


def _copy_op(keyword: str, value: str, variables: Mapping[str, str], workdir: str, line: int) -> CopyOp:
    stripped = value.strip()
    flags: dict[str, str] = {}
    while stripped.startswith("--"):
        flag, _, stripped = stripped.partition(" ")
        name, _, flag_value = flag[2:].partition("=")
        flags[name] = flag_value
        stripped = stripped.strip()
    unknown = set(flags) - {"from", "chown", "chmod", "link", "parents", "exclude"}
    if unknown:
        raise DockerfileError(f"line {line}: {keyword} flag --{sorted(unknown)[0]} is not supported")
    parts = json.loads(stripped) if stripped.startswith("[") else _split_words(stripped)
    parts = [expand(part, variables) for part in parts]
    if len(parts) < 2:
        raise DockerfileError(f"line {line}: {keyword} needs at least one source and a destination")
    *sources, dest = parts
    for source in sources:
        if re.match(r"^[a-z]+://", source) or source.startswith("git@"):
            raise DockerfileError(
                f"line {line}: {keyword} from a URL ({source}) cannot be done by the emulator"
            )
    is_dir = dest.endswith(("/", "/.")) or dest == "."
    absolute = os.path.normpath(dest if dest.startswith("/") else os.path.join(workdir, dest))
    if is_dir and not absolute.endswith("/"):
        absolute += "/"
    return CopyOp(
        sources=sources, dest=absolute, from_stage=flags.get("from") or None, add=keyword == "ADD", line=line
    )


# -- .dockerignore ----------------------------------------------------------------------------------------


def _ignore_rules(context: Path) -> list[tuple[bool, str]]:
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    rules = []
    for raw in path.read_text().splitlines():
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        negate = text.startswith("!")
        pattern = os.path.normpath(text.lstrip("!").strip().lstrip("/"))
        rules.append((negate, pattern))
    return rules


def _ignored(relative: str, rules: list[tuple[bool, str]]) -> bool:
    result = False
    parts = relative.split("/")
    for negate, pattern in rules:
        regex = fnmatch.translate(pattern).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
        prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
        if any(re.match(regex, prefix) for prefix in prefixes):
            result = not negate
    return result


# -- records and the store --------------------------------------------------------------------------------


@dataclass
class ImageRecord:
    digest: str
    names: list[str]
    base: str
    workdir: str
    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    user: str
    expose: list[str]
    labels: dict[str, str]
    skipped_run: list[str]
    created: str
    rootfs: Path

    @property
    def display_name(self) -> str:
        return self.names[0] if self.names else self.digest

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rootfs"] = str(self.rootfs)
        return data


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tree_digest(rootfs: Path, config: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for path in sorted(rootfs.rglob("*")):
        relative = path.relative_to(rootfs).as_posix()
        if path.is_symlink():
            digest.update(f"L {relative} {os.readlink(path)}\n".encode())
        elif path.is_file():
            digest.update(f"F {relative} {path.stat().st_mode & 0o777:o} {_sha256_file(path)}\n".encode())
        elif path.is_dir():
            digest.update(f"D {relative}\n".encode())
    return f"sha256:{digest.hexdigest()}"


class LocalRegistry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "images").mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_env(cls, default: Path | None = None) -> LocalRegistry:
        value = os.environ.get("LOCAL_REGISTRY_DIR")
        if value:
            return cls(Path(value))
        if default is None:
            raise RegistryError("LOCAL_REGISTRY_DIR is not set")
        return cls(default)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        with open(self.root / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                index = self._read_index()
                yield index
                temp = self.root / "index.json.tmp"
                temp.write_text(json.dumps(index, indent=1, sort_keys=True))
                temp.replace(self.root / "index.json")
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_index(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.root / "index.json").read_text())
        except (OSError, json.JSONDecodeError):
            data = {}
        data.setdefault("tags", {})
        return data

    def _image_dir(self, digest: str) -> Path:
        return self.root / "images" / digest.split(":", 1)[1]

    def _load(self, digest: str, names: list[str]) -> ImageRecord:
        directory = self._image_dir(digest)
        try:
            config = json.loads((directory / "config.json").read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise RegistryError(f"image {digest} is not in the local registry") from error
        config["names"] = names
        config["rootfs"] = directory / "rootfs"
        return ImageRecord(**config)

    # -- reading --

    def resolve(self, reference: str) -> ImageRecord:
        """The image named ``repo``, ``repo:tag``, ``repo@sha256:…`` or a bare ``sha256:…`` digest."""
        index = self._read_index()
        if re.fullmatch(r"sha256:[0-9a-f]{64}", reference):
            digest = reference
        else:
            ref = parse_reference(reference)
            if ref.digest is not None:
                digest = ref.digest
                if ref.tag is not None and index["tags"].get(ref.tagged) not in (None, digest):
                    raise RegistryError(f"image {reference} does not match the digest its tag points to")
            else:
                found = index["tags"].get(ref.tagged)
                if found is None:
                    raise RegistryError(f"image {reference} is not in the local registry (was it built?)")
                digest = found
        if not (self._image_dir(digest) / "config.json").is_file():
            raise RegistryError(f"image {reference} is not in the local registry (was it built?)")
        names = sorted(name for name, value in index["tags"].items() if value == digest)
        return self._load(digest, names)

    def exists(self, reference: str) -> bool:
        try:
            self.resolve(reference)
        except RegistryError:
            return False
        return True

    def list_images(self) -> list[ImageRecord]:
        index = self._read_index()
        by_digest: dict[str, list[str]] = {}
        for name, digest in index["tags"].items():
            by_digest.setdefault(digest, []).append(name)
        records = []
        for directory in sorted((self.root / "images").iterdir()):
            digest = f"sha256:{directory.name}"
            if (directory / "config.json").is_file():
                records.append(self._load(digest, sorted(by_digest.get(digest, []))))
        return records

    # -- writing --

    def tag(self, source: str, target: str) -> ImageRecord:
        """``docker tag SOURCE TARGET``."""
        record = self.resolve(source)
        ref = parse_reference(target)
        if ref.digest:
            raise RegistryError(f"cannot tag with a digest: {target}")
        with self._locked() as index:
            index["tags"][ref.tagged] = record.digest
        return self.resolve(ref.tagged)

    def build(
        self,
        context: Path,
        tags: list[str],
        dockerfile: Path | None = None,
        build_args: Mapping[str, str] | None = None,
        target: str | None = None,
    ) -> ImageRecord:
        """``docker build``: apply the Dockerfile's COPY/ADD to a snapshot, record config, digest and tags."""
        context = Path(context)
        if not context.is_dir():
            raise RegistryError(f"build context {context} is not a directory")
        dockerfile = dockerfile or context / "Dockerfile"
        if not dockerfile.is_file():
            raise RegistryError(f"Dockerfile {dockerfile} not found")
        references = [parse_reference(tag) for tag in tags]
        stages = parse_dockerfile(dockerfile.read_text(), build_args, self._base_image)
        if target is not None:
            names = [stage.name for stage in stages]
            if target not in names:
                raise DockerfileError(f"target stage {target!r} not found in {dockerfile}")
            stages = stages[: names.index(target) + 1]
        rules = _ignore_rules(context)
        with tempfile.TemporaryDirectory(dir=self.root, prefix=".build-") as scratch:
            roots: list[Path] = []
            final: Stage | None = None
            for number, stage in enumerate(stages):
                rootfs = Path(scratch) / f"stage{number}"
                stage = self._start_stage(stage, stages[:number], roots, rootfs)
                for copy in stage.copies:
                    self._apply_copy(copy, context, rules, rootfs, stages[:number], roots)
                roots.append(rootfs)
                final = stage
            assert final is not None
            config = {
                "base": final.base,
                "workdir": final.workdir,
                "env": final.env,
                "entrypoint": final.entrypoint,
                "cmd": final.cmd,
                "user": final.user,
                "expose": final.expose,
                "labels": final.labels,
                "skipped_run": final.skipped_run,
            }
            digest = _tree_digest(roots[-1], config)
            directory = self._image_dir(digest)
            if not (directory / "config.json").is_file():
                staging = Path(scratch) / "image"
                staging.mkdir()
                shutil.move(str(roots[-1]), staging / "rootfs")
                created = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
                (staging / "config.json").write_text(
                    json.dumps({**config, "digest": digest, "created": created})
                )
                with contextlib.suppress(OSError):
                    staging.rename(directory)
        with self._locked() as index:
            for ref in references:
                index["tags"][ref.tagged] = digest
        return self.resolve(digest)

    def _base_image(self, reference: str) -> ImageRecord | None:
        try:
            return self.resolve(reference)
        except RegistryError:
            return None

    def _start_stage(self, stage: Stage, earlier: list[Stage], roots: list[Path], rootfs: Path) -> Stage:
        """A stage's files start from an earlier stage, an image of this registry, or (other bases) empty."""
        names = {item.name: index for index, item in enumerate(earlier) if item.name}
        if stage.base in names:
            shutil.copytree(roots[names[stage.base]], rootfs, symlinks=True)
        elif (image := self._base_image(stage.base)) is not None:
            shutil.copytree(image.rootfs, rootfs, symlinks=True)
        else:
            rootfs.mkdir(parents=True)
        return stage

    def _apply_copy(
        self,
        copy: CopyOp,
        context: Path,
        rules: list[tuple[bool, str]],
        rootfs: Path,
        earlier: list[Stage],
        roots: list[Path],
    ) -> None:
        source_root = context
        use_rules = rules
        if copy.from_stage is not None:
            names = {item.name: index for index, item in enumerate(earlier) if item.name}
            if copy.from_stage in names:
                source_root = roots[names[copy.from_stage]]
            elif copy.from_stage.isdigit() and int(copy.from_stage) < len(roots):
                source_root = roots[int(copy.from_stage)]
            elif self.exists(copy.from_stage):
                source_root = self.resolve(copy.from_stage).rootfs
            else:
                raise DockerfileError(
                    f"line {copy.line}: COPY --from={copy.from_stage}: neither an earlier stage nor an image "
                    "of the local registry"
                )
            use_rules = []
        matches: list[Path] = []
        for pattern in copy.sources:
            relative = pattern.lstrip("/")
            found = (
                sorted(source_root.glob(relative))
                if any(c in relative for c in "*?[")
                else [source_root / relative]
            )
            found = [path for path in found if path.exists()]
            if not found:
                raise DockerfileError(
                    f"line {copy.line}: COPY source {pattern!r} not found in the build context"
                )
            for path in found:
                resolved = path.resolve()
                if not resolved.is_relative_to(source_root.resolve()):
                    raise DockerfileError(
                        f"line {copy.line}: COPY source {pattern!r} is outside the build context"
                    )
                matches.append(path)
        dest = copy.dest
        into_dir = dest.endswith("/") or len(matches) > 1 or any(c in "".join(copy.sources) for c in "*?[")
        target = rootfs / dest.strip("/")
        for path in matches:
            if path.is_dir():
                _copy_tree(path, target, source_root, use_rules)
            elif copy.add and _is_tar(path):
                target.mkdir(parents=True, exist_ok=True)
                with tarfile.open(path) as archive:
                    archive.extractall(target, filter="data")
            else:
                relative = path.relative_to(source_root).as_posix()
                if use_rules and _ignored(relative, use_rules):
                    raise DockerfileError(
                        f"line {copy.line}: COPY source {relative!r} is excluded by .dockerignore"
                    )
                destination = target / path.name if into_dir or target.is_dir() else target
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)


def _is_tar(path: Path) -> bool:
    return path.name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")) and tarfile.is_tarfile(path)


def _copy_tree(source: Path, target: Path, root: Path, rules: list[tuple[bool, str]]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.rglob("*")):
        relative_to_root = path.relative_to(root).as_posix()
        if rules and _ignored(relative_to_root, rules):
            continue
        destination = target / path.relative_to(source)
        if path.is_symlink():
            destination.parent.mkdir(parents=True, exist_ok=True)
            if not destination.exists():
                destination.symlink_to(os.readlink(path))
        elif path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
