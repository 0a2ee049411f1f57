"""What the workflow's rules files call while Snakemake parses them and builds the DAG: user errors as one line, the
config's schema check, and which ``mgenet`` the rules run.

How an error found before any rule runs reaches the user (Snakemake 9.x, measured on 9.27):

- An exception raised while the Snakefile is parsed prints as ``<Type> in file ..., line N:`` with its message and
  the file lines it passed through; a failed ``snakemake.utils.validate`` prints the whole schema and config (4,000
  lines for this project's).
- An exception (any ``Exception``) raised by an input function is wrapped in an ``InputFunctionException`` and
  printed with a ``Traceback:``, whether the DAG is being built or updated after a checkpoint (``index_dataset``).
- ``SystemExit`` passes through both: Snakemake then stops (exit status 1) and prints nothing of its own while the
  DAG is first built; after a checkpoint it cancels the run as on Ctrl-C ("Terminating processes on user request",
  "At least one job did not complete successfully"), and ``sys.exit``'s own message is lost there. Not from a
  ``resources:`` callable, whose every ``BaseException`` Snakemake wraps: keep those free of user errors.

So the one line is printed here, then ``SystemExit(1)`` ends Snakemake: :func:`fail`. Code that runs while the DAG
is built raises :class:`~mgenet.MgenetError` (whose message names the key or file and the fix, as everywhere in the
package); the rules files turn it into that line with :func:`dag_errors` (a decorator for input functions and the
helpers they call) or :func:`user_errors` (a ``with`` block around parse-time code). Nothing else is caught: any
other exception is a bug, and its traceback is what a report needs.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import sysconfig
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from mgenet import MgenetError

F = TypeVar("F", bound=Callable[..., Any])
SCHEMA = "workflow/schemas/config.schema.yaml"


def fail(message: str) -> NoReturn:
    """Print ``error: <message>`` on stderr and stop Snakemake (exit status 1) without a traceback."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def _message(e: MgenetError) -> str:
    from mgenet.cli.rules import explain  # the CLI's own line: a missing artifact names the rule that makes it

    return explain(e)


@contextmanager
def user_errors() -> Iterator[None]:
    """Parse-time code in a ``with`` block: a :class:`~mgenet.MgenetError` raised inside ends Snakemake with one
    ``error:`` line (:func:`fail`)."""
    try:
        yield
    except MgenetError as e:
        fail(_message(e))


def dag_errors(func: F) -> F:
    """Decorate an input function (or a helper it calls) that may raise :class:`~mgenet.MgenetError`: the error
    ends Snakemake with one ``error:`` line instead of an ``InputFunctionException`` and its traceback.

    The wrapper keeps the function's signature (``functools.wraps``), which Snakemake reads to pass ``wildcards``,
    ``input``, ``threads``... by name."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MgenetError as e:
            fail(_message(e))

    return wrapper  # type: ignore[return-value]


def _validation_error(e: BaseException) -> Any:
    """The jsonschema ``ValidationError`` behind Snakemake's ``WorkflowError`` (in its args or its cause)."""
    from jsonschema import ValidationError

    seen: list[BaseException] = []
    todo: list[Any] = [e]
    while todo:
        x = todo.pop()
        if isinstance(x, ValidationError):
            return x
        if isinstance(x, BaseException) and x not in seen:
            seen.append(x)
            todo += [*x.args, x.__cause__, x.__context__]
    return None


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def schema_error(e: BaseException, where: str = "") -> MgenetError:
    """A :class:`~mgenet.MgenetError` of one line for a failed schema check: the key (dotted path), what is wrong
    and where the keys are documented. ``where`` prefixes the key (e.g. ``ablation.variants.x: ``)."""
    err = _validation_error(e)
    path = [str(p) for p in err.absolute_path]
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):  # name the unknown key itself
        known = (err.schema or {}).get("properties", {})
        path.append("|".join(sorted(str(k) for k in err.instance if k not in known)) or "?")
    key = ".".join(path) or "(top level)"
    if err.validator in ("additionalProperties", "required"):
        what = err.message  # names the key, not the whole mapping
    else:
        what = f"{_short(err.instance)} is not valid: {err.validator} {_short(err.validator_value, 200)}"
    return MgenetError(f"{where}config key {key}: {what}; fix it in your config file (every key is documented in "
                       f"{SCHEMA}).")


def validate_config(check: Callable[[dict], Any], data: dict, where: str = "") -> None:
    """Run a schema check (in the rules files, ``lambda d: validate(d, schema=..., set_default=True)`` with
    Snakemake's ``validate``, which resolves the schema's path from its caller's rules file) and turn its failure
    into :func:`schema_error`.

    Raises:
        MgenetError: the config does not match the schema.
    """
    try:
        check(data)
    except Exception as e:  # Snakemake's WorkflowError around jsonschema's ValidationError
        if _validation_error(e) is None:
            raise
        raise schema_error(e, where) from None


def use_own_mgenet(deployment: Iterable[Any] = ()) -> str:
    """Put the folder of the ``mgenet`` installed beside the Python that runs Snakemake (its scripts folder, e.g.
    ``.venv/bin``) first on PATH, so that every rule's ``mgenet ...`` line runs the package of the snakemake that
    starts it, whatever PATH held: ``.venv/bin/snakemake`` works without an activated environment. The rules'
    shell lines inherit this environment; on a cluster each job's Snakemake (started with the same interpreter over
    the shared filesystem, and with the submitting environment) does the same when it parses the Snakefile. Under
    ``--sdm conda`` each rule's env puts its own ``mgenet`` first when it is activated, so PATH is left alone.

    (The shell lines keep a plain ``mgenet``: an absolute path in them would be a variable from outside the rule
    for ``snakemake --lint``, and as a param a rerun trigger whenever another checkout or env runs the workflow.)

    Args:
        deployment: Snakemake's ``workflow.deployment_settings.deployment_method`` (a set of enum members).
    Returns:
        the ``mgenet`` the rules will run ("mgenet" under conda).
    Raises:
        MgenetError: no ``mgenet`` beside this Python nor on PATH (the package is not installed here).
    """
    if any(getattr(m, "name", str(m)).lower() == "conda" for m in deployment):
        return "mgenet"
    exe = "mgenet.exe" if sys.platform == "win32" else "mgenet"
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        if folder and (Path(folder) / exe).is_file():
            path = os.environ.get("PATH", "")
            if path.split(os.pathsep)[0] != folder:
                os.environ["PATH"] = f"{folder}{os.pathsep}{path}" if path else folder
            return str(Path(folder) / exe)
    found = shutil.which("mgenet")
    if found:
        return found
    raise MgenetError(f"the mgenet command is not installed beside this snakemake's Python ({sys.executable}) nor "
                      f"on PATH: install the package into that environment (`make`, or `pip install -e .`) or run "
                      f"the snakemake of the environment that has it (.venv/bin/snakemake).")
