"""README's command block ("The command line") against the parser: every subcommand and every
option appears, and the block names no option the parser lacks."""

import argparse
import re

from splitnet.cli import build_parser

from ..conftest import ROOT

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## The command line\n", 1)[1]
    return section.split("```\n", 2)[1].splitlines()


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return {name: sub for action in parser._actions
            if isinstance(action, argparse._SubParsersAction)
            for name, sub in action.choices.items()}


def _commands(parser, path=()):
    """Yield (path, parser) for every subcommand, nested ones included."""
    for name, sub in _subparsers(parser).items():
        yield (*path, name), sub
        yield from _commands(sub, (*path, name))


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings
            if flag.startswith("--") and flag != "--help"}


def _documented() -> dict[tuple[str, ...], str]:
    """Return each command path's text in the block: its lines and their continuation lines."""
    root, texts, current = build_parser(), {}, []
    for line in _block():
        usage = line.split("#", 1)[0]
        if line.startswith("splitnet "):
            parsers, paths = [root], [()]
            for word in usage.split()[1:]:
                step = [((*p, n), _subparsers(q)[n]) for p, q in zip(paths, parsers, strict=True)
                        for n in word.split("|") if n in _subparsers(q)]
                if not step:
                    break
                paths, parsers = [p for p, _ in step], [q for _, q in step]
            current = paths
        for path in current:
            texts[path] = texts.get(path, "") + " " + usage
    return texts


def test_the_block_lists_every_subcommand_and_every_option():
    texts = _documented()
    missing = []
    for path, parser in _commands(build_parser()):
        if _subparsers(parser) and not _options(parser):
            continue  # a group such as `attack`: its subcommands are checked
        name = "splitnet " + " ".join(path)
        if path not in texts:
            missing.append(f"{name}: not in the block")
            continue
        missing += [f"{name} {flag}" for flag in sorted(_options(parser))
                    if flag not in set(FLAG.findall(texts[path]))]
    assert not missing, "README's command block lacks:\n" + "\n".join(missing)


def test_the_block_names_no_option_the_parser_lacks():
    commands = dict(_commands(build_parser()))
    extra = [f"splitnet {' '.join(path)} {flag}" for path, text in _documented().items()
             for flag in sorted(set(FLAG.findall(text)) - _options(commands[path]))]
    assert not extra, "README's command block names options the parser lacks:\n" + "\n".join(
        extra)


def test_the_check_sees_a_missing_option():
    texts = _documented()
    assert "--lab" in texts[("bench",)] and "--lab" not in texts[("bench", "transfer")]
    assert "--seed" in texts[("attack", "label-leak")] and "--seed" in texts[("attack", "invert")]
