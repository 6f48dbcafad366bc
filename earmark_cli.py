"""The `earmark` console command: one entry point that hands each subcommand to its package's CLI.

Packages are imported lazily so that `earmark data ...` never pays for torch/transformers start-up.

Every command follows one convention: exit 0 when done, 1 when an input, a model or the work
failed, 2 for a usage error, 130 when interrupted (Ctrl-C); messages start `earmark COMMAND: `.
A closed stdout (`earmark ... | head`) ends the command quietly.
"""
from __future__ import annotations

import importlib
import os
import sys

# subcommand -> (module, function). Each function takes argv (the words after the subcommand).
COMMANDS = {
    "data": ("data_recipes.cli", "main", "build, synthesise, ingest and check datasets"),
    "eval": ("eval.cli", "main", "score predictions / run a benchmark (mIoU, R1, F1, PSDS)"),
    "detect": ("contrastive.cli", "detect_main", "open-vocabulary sound event detection with the scorer"),
    "contrastive": ("contrastive.cli", "main", "train / evaluate the contrastive frame scorer"),
    "grounding": ("grounding.cli", "main", "train / export the audio-LLM grounder"),
    "ask": ("grounding.ask_cli", "ask_main", "when does QUERY happen in AUDIO?"),
    "audit": ("grounding.ask_cli", "audit_main", "hallucination audit with negative queries"),
    "serve": ("grounding.serve", "serve_main", "the ask/detect HTTP API and a page to try it on (localhost)"),
}


def _usage() -> str:
    lines = ["usage: earmark COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<12} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "`earmark COMMAND --help` for the options of one command."]
    return "\n".join(lines)


# commands that can continue an interrupted run with --resume, when given the option named here
# (eval: a run with a predictor, not `eval score`; ask/detect: a batch writing --out)
RESUMABLE = {"eval": "--predictor", "audit": "--out", "ask": "--out", "detect": "--out"}
INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C
PIPE_CLOSED = 141  # 128 + SIGPIPE, what a tool stopped by a closed pipe reports


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = argv[0] if argv else "earmark"
    try:
        try:
            code = _run(argv)
        except SystemExit as exc:  # argparse's --help and usage errors: flush below, inside the handler
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else _say(exc.code))
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return PIPE_CLOSED
    except KeyboardInterrupt:
        print(f"earmark {name}: interrupted{_resume_hint(argv)}", file=sys.stderr)
        return INTERRUPTED


def _say(message) -> int:
    print(message, file=sys.stderr)
    return 1


def _silence_stdout() -> None:
    """The reader went away: send what is still buffered nowhere, so that Python's own flush at
    exit does not print a second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured in tests)
        pass


def _resume_hint(argv: list[str]) -> str:
    if not argv or argv[0] not in RESUMABLE:
        return ""
    flag = RESUMABLE[argv[0]]
    if not any(a == flag or a.startswith(flag + "=") for a in argv):
        return ""
    if "--resume" in argv:
        return "; run the same command again to continue"
    return "; add --resume to the same command to continue where it stopped"


def _run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"earmark: error: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func_name, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
        func = getattr(module, func_name)
    except (ImportError, AttributeError) as exc:
        print(f"earmark {name}: error: not available in this install ({exc})", file=sys.stderr)
        return 1
    return int(func(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
