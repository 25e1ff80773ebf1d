"""The Dockerfiles and their build context, read the way Docker reads them (for the tests in
tests/test_dockerfiles.py).

No Docker engine runs where the tests run, so what an image build would do is reproduced from its
parts: `dockerfile-parse` splits each Dockerfile into instructions (continuation lines joined,
comments apart); this module groups them into stages (``FROM ... AS name``, ``FROM <stage>``
inheriting), evaluates ``ENV`` with ``$VAR``/``${VAR}`` substitution along the stage chain, tracks
``WORKDIR``, reads ``COPY`` (``--from``), ``RUN`` (split into commands at ``&&``, ``;``, ``|``) and
the ``pip install`` commands in them, and lays out the files a stage's ``COPY`` lines bring in.

``DockerIgnore`` is the ``.dockerignore`` matcher of Docker's own builder (moby/patternmatcher,
which BuildKit uses): patterns are cleaned like Go's ``filepath.Clean`` with a leading ``/``
dropped; ``*`` and ``?`` never cross ``/``; ``**`` spans any number of directories, none included;
a pattern anchors at the context root (``foo`` is not ``a/foo``: this is where it differs from
.gitignore and from pathspec's gitwildmatch); a path is excluded when a pattern matches it *or one
of its parent directories*; the last matching pattern wins, and ``!pattern`` re-includes.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import re
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[1]
"""The repository root: the build context of every image."""

DOCKERFILES = {
    "coordinator": ROOT / "services" / "coordinator" / "Dockerfile",
    "trainer": ROOT / "services" / "trainer" / "Dockerfile",
    "rollout": ROOT / "services" / "rollout" / "Dockerfile",
    "verl": ROOT / "services" / "verl" / "Dockerfile",
}


# --- .dockerignore -------------------------------------------------------------------------------


def _clean(pattern: str) -> str:
    """Go's ``filepath.Clean`` on a slash path (what Docker applies to every pattern)."""
    cleaned = posixpath.normpath(pattern)
    return "." if cleaned == "" else cleaned


def _compile(pattern: str) -> re.Pattern[str]:
    """A cleaned pattern as the anchored regular expression moby/patternmatcher builds from it."""
    out = "^"
    k = 0
    while k < len(pattern):
        ch = pattern[k]
        if ch == "*":
            if k + 1 < len(pattern) and pattern[k + 1] == "*":
                k += 2
                if k < len(pattern) and pattern[k] == "/":
                    k += 1  # "**/" is "**"
                out += ".*" if k >= len(pattern) else "(.*/)?"
                continue
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch in ".$":
            out += "\\" + ch  # Docker escapes only these two; the rest is regexp syntax as is
        elif ch == "\\":
            k += 1
            out += re.escape(pattern[k]) if k < len(pattern) else "\\\\"
        else:
            out += ch
        k += 1
    return re.compile(out + "$")


@dataclass(frozen=True)
class IgnorePattern:
    text: str
    """The cleaned pattern, without its ``!``."""
    exclusion: bool
    """``!pattern``: re-include what it matches."""
    regex: re.Pattern[str]

    def literal_prefix(self) -> str:
        """The pattern up to its first wildcard: no path outside it can match."""
        return re.split(r"[*?\[\\]", self.text, maxsplit=1)[0]


@dataclass(frozen=True)
class DockerIgnore:
    patterns: tuple[IgnorePattern, ...]

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        """Lines of a .dockerignore: ``#`` comments and blank lines skipped, each pattern trimmed,
        a leading ``!`` marks an exception, a leading ``/`` is dropped after cleaning."""
        patterns = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            cleaned = _clean(line)
            if len(cleaned) > 1 and cleaned.startswith("/"):
                cleaned = cleaned[1:]
            patterns.append(IgnorePattern(cleaned, exclusion, _compile(cleaned)))
        return cls(tuple(patterns))

    @classmethod
    def read(cls, path: Path = ROOT / ".dockerignore") -> DockerIgnore:
        return cls.parse(path.read_text(encoding="utf-8"))

    def excluded(self, path: str) -> bool:
        """Whether Docker leaves ``path`` (relative to the context, ``/``-separated) out: the
        algorithm of patternmatcher's MatchesOrParentMatches."""
        path = _clean(path)
        parent = posixpath.dirname(path)
        parents = [] if parent in ("", ".") else parent.split("/")
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue  # only an exception can undo a match, only a plain pattern can make one
            hit = pattern.regex.match(path) is not None
            if not hit:
                hit = any(
                    pattern.regex.match("/".join(parents[: i + 1])) for i in range(len(parents))
                )
            if hit:
                matched = not pattern.exclusion
        return matched

    def _may_reinclude_below(self, directory: str) -> bool:
        """Whether an exception could bring back a path under an excluded ``directory`` (the
        walker skips the directory otherwise, as Docker's does)."""
        for pattern in self.patterns:
            if not pattern.exclusion:
                continue
            prefix = pattern.literal_prefix()
            if prefix.startswith(directory + "/") or (directory + "/").startswith(prefix):
                return True
        return False

    def context(self, root: Path = ROOT) -> list[str]:
        """The files ``docker build`` would send from ``root``: relative ``/`` paths, sorted."""
        sent: list[str] = []
        for here, dirs, files in os.walk(root):
            rel_here = Path(here).relative_to(root).as_posix()
            prefix = "" if rel_here == "." else rel_here + "/"
            dirs[:] = sorted(
                d
                for d in dirs
                if not self.excluded(prefix + d) or self._may_reinclude_below(prefix + d)
            )
            sent.extend(prefix + f for f in files if not self.excluded(prefix + f))
        return sorted(sent)


# --- Dockerfiles ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    """Upper case: FROM, RUN, COPY, ENV, ..."""
    value: str
    """Everything after the keyword, continuation lines joined."""
    line: int
    """1-based, where the instruction starts."""
    workdir: str
    """The WORKDIR in force when it runs."""


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    dest: str
    """Absolute in the image (a relative COPY destination is taken from WORKDIR)."""
    from_stage: str | None
    """``--from``: an earlier stage (or image); None for the build context."""


@dataclass
class Stage:
    index: int
    base: str
    """The FROM image, or the name of the earlier stage it starts from."""
    name: str | None
    parent: Stage | None
    instructions: list[Instruction] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.name or f"stage {self.index}"

    def chain(self) -> list[Stage]:
        """This stage and those it starts from, the oldest first."""
        stages: list[Stage] = []
        stage: Stage | None = self
        while stage is not None:
            stages.insert(0, stage)
            stage = stage.parent
        return stages

    @property
    def root_image(self) -> str:
        """The image at the bottom of the chain."""
        return self.chain()[0].base

    def all_instructions(self) -> list[Instruction]:
        """What the image holds is built by these: this stage's and its ancestors'."""
        return [i for stage in self.chain() for i in stage.instructions]

    def of(self, keyword: str, inherited: bool = False) -> list[Instruction]:
        source = self.all_instructions() if inherited else self.instructions
        return [i for i in source if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        """The instruction that is in force (ENTRYPOINT, CMD, USER, HEALTHCHECK are inherited)."""
        found = self.of(keyword, inherited=True)
        return found[-1] if found else None

    def env(self, base_env: dict[str, str] | None = None) -> dict[str, str]:
        """The variables the image's ENV lines set (along the chain), each value substituted
        from the ones before it and from ``base_env`` (the base image's own, e.g. its PATH)."""
        scope = dict(base_env or {})
        image: dict[str, str] = {}
        for instruction in self.of("ENV", inherited=True):
            for key, value in parse_env(instruction.value).items():
                scope[key] = image[key] = substitute(value, scope)
        return image

    def copies(self) -> list[tuple[Instruction, Copy]]:
        """The COPY instructions of this stage alone (ADD is not used: hadolint's DL3020)."""
        return [(i, parse_copy(i)) for i in self.of("COPY")]

    def commands(self) -> list[tuple[Instruction, list[str]]]:
        """Each shell command of each RUN of this stage, as argv."""
        return [(i, argv) for i in self.of("RUN") for argv in split_commands(i.value)]

    def pip_installs(self) -> list[tuple[Instruction, list[str]]]:
        """The ``pip install`` commands of this stage's RUNs: their arguments after ``install``."""
        found = []
        for instruction, argv in self.commands():
            args = pip_args(argv)
            if args is not None:
                found.append((instruction, args))
        return found


@dataclass
class Dockerfile:
    path: Path
    stages: list[Stage]
    text: str

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        text = path.read_text(encoding="utf-8")
        parser = DockerfileParser(fileobj=io.StringIO(text), env_replace=False)
        stages: list[Stage] = []
        workdir = "/"
        for item in parser.structure:
            keyword = str(item["instruction"]).upper()
            value = str(item["value"]).strip()
            line = int(item["startline"]) + 1
            if keyword == "COMMENT":
                continue
            if keyword == "FROM":
                words = [w for w in value.split() if not w.startswith("--")]
                base = words[0]
                name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
                parent = next((s for s in stages if s.name == base), None)
                stages.append(Stage(len(stages), base, name, parent))
                workdir = _last_workdir(parent) if parent else "/"
                continue
            assert stages, f"{path}:{line}: {keyword} before any FROM"
            if keyword == "WORKDIR":
                workdir = posixpath.normpath(posixpath.join(workdir, value))
            stages[-1].instructions.append(Instruction(keyword, value, line, workdir))
        return cls(path, stages, text)

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def comments(self) -> str:
        return "\n".join(line for line in self.text.splitlines() if line.lstrip().startswith("#"))


def _last_workdir(stage: Stage) -> str:
    instructions = stage.all_instructions()
    return instructions[-1].workdir if instructions else "/"


def parse_env(value: str) -> dict[str, str]:
    """``ENV a=1 b="two words"`` (or the legacy ``ENV a one value``) as a dict, unsubstituted."""
    words = shlex.split(value)
    if words and "=" not in words[0]:
        return {words[0]: value.split(None, 1)[1] if len(words) > 1 else ""}
    return dict(word.split("=", 1) for word in words)


_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:[-+])?(?P<word>[^}]*)\}"
                  r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")  # fmt: skip


def substitute(value: str, env: dict[str, str]) -> str:
    """Docker's ``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR:+word}`` (unset: empty)."""

    def one(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("plain")
        current = env.get(name, "")
        if match.group("op") == ":-":
            return current or match.group("word")
        if match.group("op") == ":+":
            return match.group("word") if current else ""
        return current

    return _VAR.sub(one, value)


def exec_form(value: str) -> list[str] | None:
    """The JSON (exec) form of CMD, ENTRYPOINT, RUN or a HEALTHCHECK's CMD; None for shell form."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    if isinstance(parsed, list) and all(isinstance(p, str) for p in parsed):
        return list(parsed)
    return None


@dataclass(frozen=True)
class Healthcheck:
    options: dict[str, str]
    argv: list[str] | None
    """The exec-form command; None for the shell form."""


def parse_healthcheck(value: str) -> Healthcheck:
    options: dict[str, str] = {}
    rest = value
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        key, _, setting = option[2:].partition("=")
        options[key] = setting
        rest = rest.lstrip()
    keyword, _, command = rest.partition(" ")
    assert keyword.upper() == "CMD", f"HEALTHCHECK {value!r}: expected CMD"
    return Healthcheck(options, exec_form(command.strip()))


def parse_copy(instruction: Instruction) -> Copy:
    words = instruction.value.split()
    flags = {}
    while words and words[0].startswith("--"):
        key, _, setting = words.pop(0)[2:].partition("=")
        flags[key] = setting
    parsed = exec_form(" ".join(words))
    parts = parsed if parsed is not None else words
    *sources, dest = parts
    if not dest.startswith("/"):
        keep_slash = dest.endswith("/") or dest in (".", "./")
        dest = posixpath.join(instruction.workdir, dest)
        dest = posixpath.normpath(dest) + ("/" if keep_slash else "")
    return Copy(tuple(sources), dest, flags.get("from"))


def split_commands(script: str) -> list[list[str]]:
    """A RUN's shell script as its simple commands (split at ``&&``, ``||``, ``;``, ``|``)."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", "||", ";", "|", "&"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def pip_args(argv: list[str]) -> list[str] | None:
    """The arguments after ``install`` when ``argv`` is a ``pip install`` (``pip``, ``pip3``,
    ``.../bin/pip``, ``python -m pip``, with ``VAR=value`` assignments in front); else None."""
    words = list(argv)
    while words and _ASSIGNMENT.match(words[0]):
        words.pop(0)
    if not words:
        return None
    program = posixpath.basename(words[0])
    if re.fullmatch(r"pip3?(\.\d+)?", program):
        rest = words[1:]
    elif re.fullmatch(r"python3?(\.\d+)?", program) and words[1:3] == ["-m", "pip"]:
        rest = words[3:]
    else:
        return None
    return rest[1:] if rest[:1] == ["install"] else None


def is_local(requirement: str) -> bool:
    """A requirement that names a path (the project's own code), not an index package."""
    return requirement.startswith(("./", "../", "/")) or requirement in (".", "..")


def split_extras(requirement: str) -> tuple[str, str]:
    """``"./services/rollout[vllm]"`` -> (``"./services/rollout"``, ``"[vllm]"``)."""
    match = re.fullmatch(r"(.*?)(\[[^\]]*\])?", requirement)
    assert match is not None
    return match.group(1), match.group(2) or ""


# --- what COPY brings in -------------------------------------------------------------------------


def copied_files(
    dockerfile: Dockerfile, stage: Stage, context: set[str], root: Path = ROOT
) -> dict[str, Path]:
    """Image path -> file on this machine, for every file that ``stage`` (with its ancestors) has
    from the build context, directly or through ``COPY --from`` of an earlier stage."""
    placed: dict[str, Path] = {}
    for ancestor in stage.chain():
        for _instruction, copy in ancestor.copies():
            if copy.from_stage is None:
                for source in copy.sources:
                    for target, rel in _place(source, copy, len(copy.sources), context):
                        placed[target] = root / rel
            else:
                earlier = dockerfile.stage(copy.from_stage)
                before = copied_files(dockerfile, earlier, context, root)
                for source in copy.sources:
                    src = posixpath.normpath(source).rstrip("/")
                    for path, host in before.items():
                        if path == src or path.startswith(src + "/"):
                            tail = path[len(src) :].lstrip("/")
                            placed[_join(copy.dest, tail, src)] = host
    return placed


def _join(dest: str, tail: str, source: str) -> str:
    if not tail:  # a single file
        return dest + posixpath.basename(source) if dest.endswith("/") else dest
    return posixpath.join(dest, tail)


def _place(source: str, copy: Copy, count: int, context: set[str]) -> Iterator[tuple[str, str]]:
    """(image path, context path) for each context file ``source`` brings in: a file goes to
    DEST (DEST/name when DEST ends in / or there are several sources), a directory's contents
    into DEST."""
    assert not any(ch in source for ch in "*?["), f"COPY {source}: wildcards are not modelled"
    src = posixpath.normpath(source)
    if src in context:
        if copy.dest.endswith("/") or count > 1:
            yield posixpath.join(copy.dest, posixpath.basename(src)), src
        else:
            yield copy.dest, src
        return
    prefix = "" if src == "." else src + "/"
    for rel in sorted(context):
        if rel.startswith(prefix):
            yield posixpath.join(copy.dest, rel[len(prefix) :]), rel


def materialize(placed: dict[str, Path], into: Path) -> None:
    """Lay ``copied_files``'s result out under ``into`` as the image's filesystem would hold it."""
    for target, host in placed.items():
        path = into / target.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(host, path)
