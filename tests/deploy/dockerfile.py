"""Read the Dockerfile and .dockerignore the way Docker does, as far as this project needs.

The tests never rebuild these facts by hand: the base image, the ENV, the CMD,
what gets copied and installed all come from here, so a change to the Dockerfile
changes what the tests check and run.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"

_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass
class Instruction:
    keyword: str  # upper case: RUN, COPY, ENV, ...
    value: str  # everything after the keyword, continuation lines joined
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form CMD/ENTRYPOINT/RUN, else None."""
        try:
            parsed = json.loads(self.value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, list) else None

    def flags_and_arguments(self) -> tuple[dict[str, str], list[str]]:
        """``--from=builder --chown=1:1 a b c`` -> ({"from": "builder", ...}, [a, b, c])."""
        flags, words = {}, shlex.split(self.value)
        while words and words[0].startswith("--"):
            name, _, value = words.pop(0)[2:].partition("=")
            flags[name] = value
        return flags, words


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def one(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert len(found) == 1, f"expected one {keyword} in stage {self.name}, found {len(found)}"
        return found[0]

    def env(self, inherited: dict[str, str] | None = None) -> dict[str, str]:
        """The stage's ENV, in order, each value expanded against what came before."""
        env = dict(inherited or {})
        for instruction in self.all("ENV"):
            env.update(parse_env(instruction.value, env))
        return env


@dataclass
class Dockerfile:
    args: dict[str, str]  # global ARGs (before the first FROM) with their defaults
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        return next(stage for stage in self.stages if stage.name == name)


def expand(value: str, variables: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda m: variables.get(m.group(1) or m.group(2), ""), value)


def parse_env(value: str, variables: dict[str, str]) -> dict[str, str]:
    """``ENV A=1 B="two words" C=$A`` -> {"A": "1", ...}; all values see only earlier ENVs."""
    words = shlex.split(value)
    if len(words) >= 2 and "=" not in words[0]:  # the legacy form: ENV KEY value with spaces
        return {words[0]: expand(" ".join(words[1:]), variables)}
    pairs = {}
    for word in words:
        key, separator, raw = word.partition("=")
        assert separator, f"ENV {value!r}: expected KEY=VALUE"
        pairs[key] = expand(raw, variables)
    return pairs


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Comments dropped, backslash continuations joined, with their first line number."""
    lines: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        lines.append((start, buffer + stripped))
        buffer = ""
    assert not buffer, "the Dockerfile ends inside a continued line"
    return lines


def parse(path: Path = DOCKERFILE) -> Dockerfile:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in logical_lines(path.read_text()):
        keyword, _, value = line.partition(" ")
        keyword, value = keyword.upper(), value.strip()
        if keyword == "FROM":
            words = expand(value, args).split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages:
            assert keyword == "ARG", f"line {number}: only ARG may come before FROM"
            name, _, default = value.partition("=")
            args[name] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, value, number))
    return Dockerfile(args=args, stages=stages)


# ---------------------------------------------------------------------------------------
# .dockerignore


def ignore_patterns(path: Path = DOCKERIGNORE) -> list[str]:
    patterns = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            patterns.append(line)
    return patterns


def _regex(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match syntax plus Docker's ``**`` (any number of folders)."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i:]:
            end = pattern.index("]", i)
            out, i = out + "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def _matches(pattern: str, relative: str) -> bool:
    """Docker's rule: the pattern matches the path or one of its parent folders."""
    regex = _regex(pattern.strip("/"))
    parts = relative.strip("/").split("/")
    return any(regex.match("/".join(parts[:depth])) for depth in range(1, len(parts) + 1))


def is_ignored(relative: str, patterns: list[str] | None = None) -> bool:
    """Whether Docker leaves ``relative`` (a path from the context root) out of the context."""
    patterns = ignore_patterns() if patterns is None else patterns
    ignored = False
    for pattern in patterns:  # the last matching pattern decides
        negated = pattern.startswith("!")
        if _matches(pattern.lstrip("!"), relative):
            ignored = not negated
    return ignored
