"""The module tree of the workspace's Rust crates, read from the sources as text.

Shared by deploy/ci/no-cycles and deploy/ci/no-flags-in-libs (Python 3 standard library
only). Cargo.toml files are read with tomllib; a crate's targets are its library
(src/lib.rs), its binaries (src/main.rs, src/bin/*.rs, [[bin]] paths); tests, benches and
examples are left out. From each target's root file the `mod` lines give the module
tree (module path -> file), following Rust's rules: `mod x;` in a/mod.rs, lib.rs or
main.rs is a/x.rs or a/x/mod.rs; in a/b.rs it is a/b/x.rs or a/b/x/mod.rs; `#[path]`
is honoured. Items under `#[cfg(test)]` are skipped, comments and literals are blanked
(`strip`), so neither doc text nor strings are read as code.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from dataclasses import dataclass, field

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def set_root(path: str) -> None:
    """Reads another workspace (the scripts' self-tests build one in a temporary folder)."""
    global ROOT
    ROOT = os.path.abspath(path)


def strip(text: str, keep_strings: bool = False, keep_plain_comments: bool = False) -> str:
    """`text` with comments blanked (and string/char literals too, unless keep_strings;
    with keep_plain_comments only doc comments are blanked: `///`, `//!`, `/** */`,
    `/*! */`); line breaks and offsets are kept, so positions still map to lines."""
    out = []
    i, n = 0, len(text)

    def blank(s: str) -> str:
        return "".join(c if c == "\n" else " " for c in s)

    def is_doc(comment: str) -> bool:
        if comment.startswith("//"):
            return comment.startswith("//!") or (comment.startswith("///") and not comment.startswith("////"))
        return comment.startswith("/*!") or (
            comment.startswith("/**") and not comment.startswith("/***") and not comment.startswith("/**/")
        )

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            keep = keep_plain_comments and not is_doc(text[i:j])
            out.append(text[i:j] if keep else blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            keep = keep_plain_comments and not is_doc(text[i:j])
            out.append(text[i:j] if keep else blank(text[i:j]))
            i = j
        elif c in "rb" and re.match(r'(?:br|rb|r)#*"', text[i:i + 260]) and not _ident_before(text, i):
            m = re.match(r'(?:br|rb|r)(#*)"', text[i:])
            hashes = m.group(1)
            end = text.find('"' + hashes, i + m.end())
            j = n if end < 0 else end + 1 + len(hashes)
            out.append(text[i:j] if keep_strings else blank(text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(text[i:j] if keep_strings else '"' + blank(text[i + 1:j - 1]) + '"')
            i = j
        elif c == "'":
            # A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a): a lifetime has no
            # closing quote right after its first character.
            m = re.match(r"'(?:\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'", text[i:])
            if m:
                out.append(blank(text[i:i + m.end()]) if not keep_strings else text[i:i + m.end()])
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _ident_before(text: str, i: int) -> bool:
    return i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")


_CFG_TEST = re.compile(r"#\[cfg\(\s*test\s*\)\]")


def test_spans(code: str) -> list[tuple[int, int]]:
    """Where the items under `#[cfg(test)]` are in `code` (already stripped)."""
    spans = []
    for m in _CFG_TEST.finditer(code):
        i = m.end()
        # The item runs to its first `;` outside braces or to the end of its first block.
        depth = 0
        j = i
        while j < len(code):
            ch = code[j]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    j += 1
                    break
            elif ch == ";" and depth == 0:
                j += 1
                break
            j += 1
        spans.append((m.start(), j))
    return spans


def blank_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with the spans blanked (line breaks kept)."""
    if not spans:
        return text
    chars = list(text)
    for a, b in spans:
        for k in range(a, min(b, len(chars))):
            if chars[k] != "\n":
                chars[k] = " "
    return "".join(chars)


def skip_test_items(code: str) -> str:
    """`code` (already stripped) with every item under `#[cfg(test)]` blanked."""
    return blank_spans(code, test_spans(code))


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


@dataclass
class Module:
    """One module: its path from the crate root, the file it is written in, and for an
    inline module (`mod x { ... }`) the span of its body in that file."""

    path: tuple[str, ...]
    file: str
    span: tuple[int, int] | None = None
    children: dict[str, "Module"] = field(default_factory=dict)
    parent: "Module | None" = None


@dataclass
class Target:
    """A crate target (lib or bin): its name, kind, root file and module tree."""

    crate: str
    kind: str
    name: str
    root_file: str
    root: Module | None = None
    modules: list[Module] = field(default_factory=list)
    code: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def label(self) -> str:
        return f"{self.crate} ({self.kind} {self.name})"


_MOD = re.compile(
    r"((?:#\[[^\]]*\]\s*)*)(?:pub(?:\([^)]*\))?\s+)?mod\s+(r#)?([A-Za-z_][A-Za-z0-9_]*)\s*([;{])"
)
_PATH_ATTR = re.compile(r'#\[path\s*=\s*"([^"]+)"\]')


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def load_target(t: Target) -> Target:
    """Fills `t`'s module tree from its root file."""
    t.root = Module((), t.root_file)
    t.modules = [t.root]
    _walk_file(t, t.root, t.root_file, True)
    return t


def _child_dir(file: str, owns_dir: bool) -> str:
    base = os.path.dirname(file)
    if owns_dir:
        return base
    return os.path.join(base, os.path.splitext(os.path.basename(file))[0])


def _walk_file(t: Target, module: Module, file: str, owns_dir: bool) -> None:
    if file in t.code:
        return
    raw = _read(file)
    code = skip_test_items(strip(raw))
    t.code[file] = code
    # Raw text is read again for #[path = "..."] (strip blanks string literals).
    raw_code = strip(raw, keep_strings=True)
    _walk_items(t, module, file, code, raw_code, 0, len(code), _child_dir(file, owns_dir))


def _walk_items(t, module, file, code, raw_code, start, end, child_dir):
    i = start
    while True:
        m = _MOD.search(code, i, end)
        if not m:
            return
        name, kind = m.group(3), m.group(4)
        attrs = raw_code[m.start(1):m.end(1)]
        if kind == "{":
            body_start = m.end()
            body_end = _matching_brace(code, m.end() - 1)
            child = Module(module.path + (name,), file, (body_start, body_end), parent=module)
            module.children[name] = child
            t.modules.append(child)
            _walk_items(t, child, file, code, raw_code, body_start, body_end, os.path.join(child_dir, name))
            i = body_end
            continue
        i = m.end()
        p = _PATH_ATTR.search(attrs)
        if p:
            candidates = [os.path.normpath(os.path.join(os.path.dirname(file), p.group(1)))]
        else:
            candidates = [os.path.join(child_dir, name + ".rs"), os.path.join(child_dir, name, "mod.rs")]
        found = next((c for c in candidates if os.path.isfile(c)), None)
        if found is None:
            t.problems.append(f"{rel(file)}:{line_of(code, m.start())}: no file for `mod {name};` ({', '.join(rel(c) for c in candidates)})")
            continue
        child = Module(module.path + (name,), found, parent=module)
        module.children[name] = child
        t.modules.append(child)
        _walk_file(t, child, found, os.path.basename(found) == "mod.rs" or bool(p and found.endswith("mod.rs")))


def _matching_brace(code: str, open_at: int) -> int:
    depth = 0
    for j in range(open_at, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(code)


def rel(path: str) -> str:
    return os.path.relpath(path, ROOT)


@dataclass
class Crate:
    """A workspace member: package name, folder, whether it has a library, its targets."""

    name: str
    dir: str
    targets: list[Target]

    def lib(self) -> Target | None:
        return next((t for t in self.targets if t.kind == "lib"), None)


def workspace_crates() -> list[Crate]:
    """Every member of the workspace, in the order Cargo.toml lists them."""
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        members = tomllib.load(f)["workspace"]["members"]
    crates = []
    for member in members:
        d = os.path.join(ROOT, member)
        with open(os.path.join(d, "Cargo.toml"), "rb") as f:
            manifest = tomllib.load(f)
        name = manifest["package"]["name"]
        targets = []
        lib = os.path.join(d, manifest.get("lib", {}).get("path", "src/lib.rs"))
        if os.path.isfile(lib):
            targets.append(Target(name, "lib", manifest.get("lib", {}).get("name", name.replace("-", "_")), lib))
        bins = {}
        if os.path.isfile(os.path.join(d, "src", "main.rs")):
            bins[name] = os.path.join(d, "src", "main.rs")
        bin_dir = os.path.join(d, "src", "bin")
        if os.path.isdir(bin_dir):
            for entry in sorted(os.listdir(bin_dir)):
                if entry.endswith(".rs"):
                    bins[entry[:-3].replace("_", "-")] = os.path.join(bin_dir, entry)
                elif os.path.isfile(os.path.join(bin_dir, entry, "main.rs")):
                    bins[entry] = os.path.join(bin_dir, entry, "main.rs")
        for b in manifest.get("bin", []):
            if "path" in b:
                path = os.path.join(d, b["path"])
                bins = {k: v for k, v in bins.items() if v != path}
                bins[b["name"]] = path
        for bname, path in bins.items():
            targets.append(Target(name, "bin", bname, path))
        crates.append(Crate(name, d, [load_target(t) for t in targets]))
    return crates


def select(crates: list[Crate], names: list[str], script: str) -> list[Crate]:
    """The crates named (all when none is); an unknown name is an error."""
    if not names:
        return crates
    known = {c.name: c for c in crates}
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"{script}: no workspace crate named {', '.join(unknown)} (crates: {', '.join(known)})", file=sys.stderr)
        sys.exit(2)
    return [known[n] for n in names]
