"""The command group's own frame: how a mistake click catches, a closed pipe, an unreadable
file and Ctrl-C end, whatever the command.

click prints a usage error as four lines ("Usage: ...", "Try ...", a blank, "Error: ...") and
exits 1 when the reader of a pipe goes away (``| head``), which this command's exit codes
define as "some certificates failed". Here each ends as the rest of the command's mistakes do:
one ``error:`` line and exit code 2; a closed pipe ends quietly with 141 (128 + SIGPIPE, what
a shell reports for a program the pipe stopped); Ctrl-C with 130. Usage lines name arguments
as POSIX does: ``FILE`` when required, ``[FILE]`` when not.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Sequence
from typing import Any, Final, NoReturn

from typer.core import TyperArgument, TyperCommand, TyperGroup

__all__ = ["EXIT_BROKEN_PIPE", "ThingpressCommand", "ThingpressGroup", "print_error"]

EXIT_BROKEN_PIPE: Final = 141
_EXIT_USAGE: Final = 2
_EXIT_INTERRUPTED: Final = 130


def print_error(message: str) -> None:
    """``error: <message>`` on one line of standard error (red on a terminal, unless NO_COLOR)."""
    from rich.console import Console
    from rich.markup import escape

    line = escape(" ".join(message.split()))
    Console(stderr=True).print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)


def _quiet_closed_pipe() -> NoReturn:
    """The reader of standard output has gone (``| head``): stop without a word, and without
    Python's "Exception ignored ... BrokenPipeError" when it flushes at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout descriptor (a test runner's buffer)
        pass
    sys.exit(EXIT_BROKEN_PIPE)


def _is(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` is click's ``name`` exception. typer 0.16 to 0.2x raise click's own,
    later ones their bundled copy of it: the class names are the same."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def _usage_message(exc: Any) -> str:
    """click's message, with where to read more, on one line."""
    message = str(exc.format_message()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    if _is(exc, "UsageError") and ctx is not None:
        message += f" (see {ctx.command_path} --help)"
    return message


class ThingpressGroup(TyperGroup):
    """The typer group, with one-line errors and this command's exit codes.

    typer builds each command (and the ``ledger`` group) before the group that holds them;
    they become this module's classes here, so no command has to name a class of its own.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            if type(command) is TyperCommand:
                command.__class__ = ThingpressCommand
            elif type(command) is TyperGroup:
                command.__class__ = ThingpressGroup
                for inner in command.commands.values():
                    if type(inner) is TyperCommand:
                        inner.__class__ = ThingpressCommand

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:  # the caller handles click's exceptions itself
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except Exception as exc:
            if _is(exc, "NoArgsIsHelpError"):  # no command given: the help, as click shows it
                exc.show()  # type: ignore[attr-defined]  # a ClickException, matched by name
                sys.exit(_EXIT_USAGE)
            if _is(exc, "ClickException"):
                print_error(_usage_message(exc))
                sys.exit(_EXIT_USAGE if _is(exc, "UsageError") else int(getattr(exc, "exit_code", 1)))
            if _is(exc, "Abort"):  # Ctrl-C or the end of input at a prompt
                print_error("interrupted")
                sys.exit(_EXIT_INTERRUPTED)
            raise
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _quiet_closed_pipe()
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                _quiet_closed_pipe()
            # a file the command was given cannot be read or written (a device, /proc, a full disk)
            where = f"{exc.filename}: " if exc.filename else ""
            print_error(f"{where}{exc.strerror or exc}; check the path, or choose another file")
            sys.exit(_EXIT_USAGE)


class ThingpressCommand(TyperCommand):
    """A typer command whose usage line and argument list name arguments as POSIX does."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.metavar or (param.name or "ARG").upper()
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_help(self, ctx: Any, formatter: Any) -> None:
        # typer adds the value's type after an argument's name ("FILE <str>"); the name says it
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                param.display_type_rich = _no_type  # type: ignore[method-assign]  # per-instance override of a display hook
        super().format_help(ctx, formatter)


def _no_type(ctx: object) -> None:
    return None
