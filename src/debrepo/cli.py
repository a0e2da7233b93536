"""The `debrepo` command line: parse arguments, call `debrepo.app`, print the result.

Errors are one line on stderr and a non-zero exit status (2 for usage and
configuration, 3 for a sync in which some packages failed, 130 and 143 for Ctrl-C and
SIGTERM, 1 for everything else); `-v` adds the traceback of unexpected ones.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from debrepo import __version__
from debrepo.errors import OUTCOME_REPORTED, DebrepoError
from debrepo.settings import ENVIRONMENT, shown_default

if TYPE_CHECKING:
    from debrepo.app import Workspace
    from debrepo.model import PackageRecord
    from debrepo.services.publish import PublishReport

log = logging.getLogger("debrepo")

GLOBAL_OPTIONS = (  # flag, setting, what it is (the environment variable and default follow)
    ("--home", "home", "Working folder for the embedded default"),
    ("--settings", "settings_file", "Settings file (YAML)"),
    ("--store", "store", "Metadata store URL, e.g. sqlite:///srv/debrepo/metadata.db"),
    ("--repo", "repo", "Published repository URL, e.g. file:///srv/repo"),
    ("--staging", "staging", "Staging area URL (never public)"),
    ("--key-file", "key_file", "Signing key file"),
    ("--config-dir", "config_dir", "Package definitions folder"),
    ("--public-url", "public_url", "URL clients use to reach the repository"),
    ("--origin", "origin", "Release Origin"),
    ("--label", "label", "Release Label"),
    ("--suite", "suite", "Release Suite"),
    ("--codename", "codename", "Release Codename"),
    ("--components", "components", "Components, comma separated"),
    ("--architectures", "architectures", "Architectures, comma separated"),
    ("--valid-days", "valid_days", "Days until Valid-Until"),
)


class Output:
    """Human output on stdout; progress bars on stderr only when it is a terminal."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.interactive = sys.stderr.isatty() and not quiet

    def say(self, message: str) -> None:
        if not self.quiet:
            click.echo(_shown_lines(message))

    @contextmanager
    def progress(
        self, description: str, total: int | None = None
    ) -> Iterator[Callable[[int], None]]:
        if not self.interactive or (total is not None and total < 2):
            yield lambda _n: None
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)

    def phase_progress(self) -> Callable[[str, int, int], None] | None:
        """A (phase, done, total) callback drawing one bar per phase, or None."""
        if not self.interactive:
            return None
        from rich.console import Console
        from rich.progress import Progress, TaskID

        bars: dict[str, TaskID] = {}
        progress = Progress(console=Console(stderr=True), transient=True)

        def update(phase: str, done: int, total: int) -> None:
            if phase not in bars:
                if not bars:
                    progress.start()
                bars[phase] = progress.add_task(phase, total=total)
            progress.update(bars[phase], completed=done)
            if all(t.finished for t in progress.tasks):
                progress.stop()

        return update


def _seconds(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
    if value != value:  # nan passes every range check, and would wait forever
        raise click.BadParameter("must be a number of seconds")
    return value


wait_option = click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(0, 86400),
    callback=_seconds,
    default=0.0,
    show_default=True,
    help="Seconds to wait for another publisher to finish.",
)


def _shown(text: str) -> str:
    """`text` with every character that is not printable (line breaks, terminal escapes,
    NUL; a tab stays) shown as its escape: a file name or upstream text may hold any."""
    return "".join(c if c == "\t" or c.isprintable() else ascii(c)[1:-1] for c in text)


def _shown_lines(text: str) -> str:
    """`_shown` line by line: what a package or upstream says (a description, a URL,
    an asset name) may drive the terminal otherwise, and dpkg takes ESC in a field."""
    return "\n".join(_shown(line) for line in text.split("\n"))


class _ShownFormatter(logging.Formatter):
    """Log lines as `_shown_lines` shows them: warnings name files and upstream text."""

    def format(self, record: logging.LogRecord) -> str:
        return _shown_lines(super().format(record))


def _fail(message: str, code: int) -> NoReturn:
    # One line, and no escape sequence from a hostile name reaches the terminal.
    click.echo(f"debrepo: error: {_shown(message)}", err=True)
    sys.exit(code)


def _workspace(ctx: click.Context, *, existing_only: bool = False) -> Workspace:
    """The command's backends; `existing_only` for commands that must not start a new
    repository where none is (a mistyped --home would otherwise look empty, not wrong)."""
    from debrepo.app import Workspace
    from debrepo.settings import load_settings

    state: dict[str, Any] = ctx.ensure_object(dict)
    if "workspace" not in state:
        settings = load_settings(state["flags"])
        state["workspace"] = Workspace(
            settings, progress=state["output"].phase_progress(), existing_only=existing_only
        )
    workspace: Workspace = state["workspace"]
    return workspace


def _text(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A name or version as typed: bytes that are not UTF-8 (which the shell passes as
    they are) cannot name anything a store holds."""
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raw = value.encode("utf-8", "surrogateescape")
            raise click.BadParameter(f"{raw!r} is not UTF-8 text") from None
    return value


def _output(ctx: click.Context) -> Output:
    output: Output = ctx.ensure_object(dict)["output"]
    return output


VERBOSE_LISTED = 50  # files named per kind with -v; an `add` of 10,000 would flood


def _report(out: Output, report: PublishReport | None, ws: Workspace) -> None:
    if report is None:
        return
    out.say(f"published {ws.settings.repo}: {report.summary()}")
    if report.convenience_version:
        out.say(f"kiro-repo.deb is kiro-repo {report.convenience_version}")
    if click.get_current_context().find_root().ensure_object(dict).get("verbose"):
        added = [*report.pool_placed, *report.pool_copied]
        for verb, keys in (
            ("added", added),
            ("wrote", report.written),
            ("deleted", report.deleted),
        ):
            for key in keys[:VERBOSE_LISTED]:
                out.say(f"  {verb} {key}")
            if len(keys) > VERBOSE_LISTED:
                out.say(f"  {verb} {len(keys) - VERBOSE_LISTED} more")


def _record_json(record: PackageRecord) -> dict[str, Any]:
    item = record.to_item()
    item["control_fields"] = dict(record.control_fields)
    return item


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="debrepo")
@click.option("-v", "--verbose", count=True, help="More detail (twice: debug log and tracebacks).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.pass_context
def cli(ctx: click.Context, /, verbose: int, quiet: bool, **flags: Any) -> None:
    """Run a signed, multi-package APT repository from a metadata store.

    The embedded default keeps everything under .debrepo/: the SQLite store, the
    staging area, the signing key (generated on first use) and the published folder.
    """
    level = logging.WARNING if not verbose else logging.INFO if verbose == 1 else logging.DEBUG
    if quiet:
        level = logging.ERROR
    root = logging.getLogger()
    if not root.handlers:  # as logging.basicConfig, plus the filter
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_ShownFormatter("debrepo: %(levelname)s: %(message)s"))
        # A package's sync failure is said once, by its outcome line or the error.
        handler.addFilter(lambda record: not getattr(record, OUTCOME_REPORTED, False))
        root.addHandler(handler)
        root.setLevel(level)
    # urllib3 logs every retry at WARNING; sources already report the outcome per package.
    logging.getLogger("urllib3").setLevel(logging.DEBUG if verbose > 1 else logging.ERROR)
    ctx.ensure_object(dict).update(flags=flags, output=Output(quiet), verbose=verbose)


for _flag, _name, _help in GLOBAL_OPTIONS:
    _default = shown_default(_name)
    _where = f"env {ENVIRONMENT[_name]}" + (f"; default {_default}" if _default else "")
    cli = click.option(_flag, _name, default=None, help=f"{_help} [{_where}]")(cli)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--no-publish",
    is_flag=True,
    help="Only record them (their files go into the pool, unlisted); publish later with `rebuild`.",
)
@wait_option
@click.pass_context
def add(ctx: click.Context, files: Sequence[Path], no_publish: bool, wait_seconds: float) -> None:
    """Add .deb files (or folders of them) and publish them: all of them, or none.

    A version already stored with the same bytes is skipped, so running an add again
    finishes one that was stopped."""
    from debrepo.app import add_packages, expand_paths

    ws, out = _workspace(ctx), _output(ctx)
    paths = expand_paths(files)
    with out.progress("reading packages", len(paths)) as advance:
        result = add_packages(
            ws,
            paths,
            publish=not no_publish,
            wait_seconds=wait_seconds,
            file_progress=advance,
        )
    for verb, records in (("added", result.records), ("already stored", result.already_stored)):
        for record in records[:20]:
            out.say(f"{verb} {record.package_name} {record.version} ({record.architecture})")
        if len(records) > 20:
            out.say(f"{verb} {len(records) - 20} more")
    for record in result.put_back:
        out.say(f"put back the file of {record.package_name} {record.version}")
    if not (result.records or result.put_back or result.report or no_publish):
        out.say("nothing new to add or publish")
    _report(out, result.report, ws)


@cli.command()
@wait_option
@click.option(
    "--full",
    is_flag=True,
    help="Render every index again and look every pool file up (restoring missing ones "
    "from the staging area).",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Publish this store's contents and settings even where that drops published "
    "versions the store lacks or changes Origin, Label, Codename, the components or the "
    "signing key (implies --full).",
)
@click.pass_context
def rebuild(ctx: click.Context, wait_seconds: float, full: bool, replace: bool) -> None:
    """Regenerate and re-sign every index from the store alone (force rebuild)."""
    from debrepo.app import rebuild as rebuild_repository

    ws = _workspace(ctx, existing_only=True)
    report = rebuild_repository(ws, wait_seconds=wait_seconds, full=full, replace=replace)
    _report(_output(ctx), report, ws)


@cli.command("build-repo-package")
@click.option(
    "--version", "version", required=True, help="Version of kiro-repo to build, e.g. 1.2.0."
)
@click.option(
    "--repo-url",
    default=None,
    help="Repository URL the package points apt at [default: --public-url].",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write the .deb here.",
)
@click.option("--no-publish", is_flag=True, help="Only stage and record it.")
@wait_option
@click.pass_context
def build_repo_package(
    ctx: click.Context,
    version: str,
    repo_url: str | None,
    output: Path | None,
    no_publish: bool,
    wait_seconds: float,
) -> None:
    """Build kiro-repo_<VERSION>_all.deb, stage and record it, then publish."""
    from debrepo.app import build_kiro_repo

    ws, out = _workspace(ctx), _output(ctx)
    result = build_kiro_repo(
        ws,
        version=version,
        repo_url=repo_url,
        publish_after=not no_publish,
        output=output,
        wait_seconds=wait_seconds,
    )
    if result.records:
        record = result.records[0]
        what = "built"
    else:  # the same bytes as the stored build of that version
        record = result.already_stored[0]
        what = "already stored, built the same again:"
    out.say(
        f"{what} {record.actual_filename} ({record.file_size} bytes, sha256 {record.sha256_hash})"
    )
    if result.put_back:
        out.say(f"put back its missing staged copy ({ws.staging.description})")
    _report(out, result.report, ws)


@cli.command("list")
@click.option("--package", "package_name", default=None, callback=_text, help="Only this package.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--withdrawn",
    is_flag=True,
    help="Instead, the versions removed on purpose, which sync does not fetch again.",
)
@click.pass_context
def list_command(
    ctx: click.Context, package_name: str | None, as_json: bool, withdrawn: bool
) -> None:
    """List the package versions in the store."""
    from debrepo.app import list_packages

    ws = _workspace(ctx, existing_only=True)
    if withdrawn:
        _list_withdrawn(ws, package_name, as_json)
        return
    records = list_packages(ws, package_name)
    if as_json:
        click.echo(json.dumps([_record_json(r) for r in records], indent=2))
        return
    if not records:
        _output(ctx).say(
            f"the store holds no version of {package_name}"
            if package_name
            else "the store holds no packages"
        )
        return
    width = max(len(r.package_name) for r in records)
    vwidth = max(len(r.version) for r in records)
    for r in records:
        click.echo(
            f"{r.package_name:<{width}}  {r.version:<{vwidth}}  {r.architecture:<6}  "
            f"{r.file_size:>11}  {r.package_type}"
        )


def _list_withdrawn(ws: Workspace, package_name: str | None, as_json: bool) -> None:
    from debrepo.versions import version_key

    rows = []
    stored_again = ws.store.package_ids()  # wanted again: not withdrawn any more
    for package_id, when in ws.store.withdrawals().items():
        name, _, version = package_id.partition("#")
        if package_name in (None, name) and package_id not in stored_again:
            rows.append((name, version, when))
    rows.sort(key=lambda row: (row[0], version_key(row[1])))
    if as_json:
        shown = [{"package_name": n, "version": v, "withdrawn_at": w} for n, v, w in rows]
        click.echo(json.dumps(shown, indent=2))
        return
    for name, version, when in rows:
        click.echo(f"{name}  {version}  removed {when}")


@cli.command()
@click.argument("package", callback=_text)
@click.argument("version", required=False, callback=_text)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def show(ctx: click.Context, package: str, version: str | None, as_json: bool) -> None:
    """Show one version (the latest when VERSION is omitted), as its Packages entry."""
    from debrepo.app import find_package
    from debrepo.core.indexes import render_stanza

    ws = _workspace(ctx, existing_only=True)
    record = find_package(ws, package, version)
    if as_json:
        click.echo(json.dumps(_record_json(record), indent=2))
        return
    click.echo(_shown_lines(render_stanza(record, ws.settings.component)), nl=False)
    extras = {
        "Origin-URL": record.deb_url,
        "Package-Type": record.package_type,
        "Published": record.pub_date,
        "Processed": record.processed_timestamp,
        "Notes": record.notes,
    }
    for key, value in extras.items():
        if value:
            click.echo(f"X-Debrepo-{key}: {_folded(value)}")


def _folded(text: str) -> str:
    """Upstream text as a deb822 field value: continuation lines indented, an empty one
    as ' .', and control characters (terminal escapes, NUL) shown escaped, not sent."""
    lines = text.replace("\r\n", "\n").strip("\n").split("\n")
    shown = [_shown(line) for line in lines]
    return "\n".join([shown[0], *(f" {line}" if line.strip() else " ." for line in shown[1:])])


@cli.command()
@click.argument("package", callback=_text)
@click.argument("version", callback=_text)
@click.option("--no-publish", is_flag=True, help="Only delete from the store.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@wait_option
@click.pass_context
def remove(
    ctx: click.Context, package: str, version: str, no_publish: bool, yes: bool, wait_seconds: float
) -> None:
    """Remove one version from the store and the published repository."""
    from debrepo.app import find_package, remove_package

    ws = _workspace(ctx, existing_only=True)
    if not yes and sys.stdin.isatty():
        find_package(ws, package, version)  # a version not stored is said before asking
        click.confirm(f"remove {package} {version} from the store and the repository?", abort=True)
    record, report = remove_package(
        ws, package, version, publish_after=not no_publish, wait_seconds=wait_seconds
    )
    _output(ctx).say(f"removed {record.package_name} {record.version}")
    config = ws.configs.get(record.package_name)
    if config is not None and config.source.type != "build_script":
        _output(ctx).say(
            f"`debrepo sync` will not fetch {record.version} again (`debrepo add` of its "
            ".deb takes it back)"
        )
    _report(_output(ctx), report, ws)


@cli.command()
@click.option("--quick", is_flag=True, help="Check pool file sizes only, not their checksums.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def verify(ctx: click.Context, quick: bool, as_json: bool) -> None:
    """Check the published repository against the store; exit 1 on any problem."""
    from debrepo.app import verify as verify_repository

    ws = _workspace(ctx, existing_only=True)
    report = verify_repository(ws, quick=quick)
    if as_json:
        click.echo(json.dumps(asdict(report) | {"ok": report.ok}, indent=2))
    else:
        for warning in report.warnings:
            click.echo(f"debrepo: warning: {_shown(warning)}", err=True)
        for problem in report.problems:
            click.echo(f"problem: {_shown(problem)}", err=True)
        _output(ctx).say(
            f"{'OK' if report.ok else 'FAILED'}: {report.packages_checked} package(s), "
            f"{report.files_checked} index file(s) checked in {ws.settings.repo}"
        )
    if not report.ok:
        sys.exit(1)


@cli.command()
@click.option(
    "--bind", "host", default="127.0.0.1", show_default=True, help="Loopback address to listen on."
)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port (0 picks a free one).",
)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the published folder over HTTP on 127.0.0.1 (for apt on this machine)."""
    from debrepo.factory import local_folder
    from debrepo.serve import make_server

    ws = _workspace(ctx)
    root = local_folder(ws.settings.repo)
    if root is None:
        ws.repo  # noqa: B018 - a malformed URL is named as such
        _fail(f"serve works on a local folder; {ws.settings.repo} is not one", 2)
    # Not created here: a mistyped --home would otherwise leave an empty folder behind
    # that looks like a repository nobody published.
    server = make_server(root, host, port)
    if not (root / "dists" / ws.settings.suite / "InRelease").is_file():
        if state := ws.published_from():  # it was: the folder went, or --repo is wrong
            click.echo(
                f"debrepo: warning: nothing is published in {root}, though {state} records "
                "a publish from this home; check --repo, or restore the folder (`debrepo "
                "rebuild` publishes it again, and says which pool files it lacks)",
                err=True,
            )
        else:
            # Serving first is how one learns the URL to build kiro-repo with (--port 0).
            missing = "" if root.is_dir() else " (the folder does not exist: check --home)"
            click.echo(
                f"debrepo: warning: nothing is published in {root} yet{missing}; files "
                "appear as soon as you publish (debrepo add / build-repo-package)",
                err=True,
            )
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    try:
        click.echo(f"serving {root} at http://{url_host}:{bound_port}/ (Ctrl-C to stop)", err=True)
        server.serve_forever()
    except (KeyboardInterrupt, _Terminated):
        # Ctrl-C or SIGTERM (systemd, docker stop) is how a server is meant to end.
        click.echo("stopped", err=True)
    finally:
        server.server_close()


@cli.group()
def key() -> None:
    """Manage the signing key."""


@key.command("generate")
@click.option(
    "--force", is_flag=True, help="Replace an existing key (with --next: the next key's file)."
)
@click.option(
    "--next",
    "as_next",
    is_flag=True,
    help="Generate the key to take over signing, beside the key file as next-<name>, and "
    "announce it (see `key announce`).",
)
@wait_option
@click.pass_context
def key_generate(ctx: click.Context, force: bool, as_next: bool, wait_seconds: float) -> None:
    """Generate a new Ed25519 signing key at --key-file (with --next: the key to take
    over signing, announced; --wait applies to its publish)."""
    from debrepo.app import generate_key, generate_next_key

    if as_next:
        signer, path = generate_next_key(_workspace(ctx, existing_only=True), force=force)
        _output(ctx).say(f"generated signing key {signer.fingerprint.upper()} at {path}")
        ctx.invoke(key_announce, key_file=path, withdraw=False, wait_seconds=wait_seconds)
        return
    ws = _workspace(ctx)
    signer = generate_key(ws, force=force)
    _output(ctx).say(
        f"generated signing key {signer.fingerprint.upper()} at {ws.settings.key_file}"
    )
    secret = ws.settings.key_secret_id
    if secret:  # the file is not what signs: the secret is
        _output(ctx).say(
            f"the repository signs with the key in secret {secret}, not this file: to use "
            f"it, `aws secretsmanager put-secret-value --secret-id {secret} --secret-string "
            f"file://{ws.settings.key_file}`, then `debrepo rebuild --replace`"
        )
    elif ws.store_exists():
        _output(ctx).say(
            "run `debrepo rebuild --replace` to publish the new public key and re-sign, then "
            "`debrepo build-repo-package --version NEXT` so new users install it"
        )
    else:
        _output(ctx).say("the first `debrepo add` or `build-repo-package` publishes with it")


@key.command("announce")
@click.argument(
    "key_file", required=False, type=click.Path(path_type=Path, dir_okay=False, exists=True)
)
@click.option("--withdraw", is_flag=True, help="Stop announcing the announced key.")
@wait_option
@click.pass_context
def key_announce(
    ctx: click.Context, key_file: Path | None, withdraw: bool, wait_seconds: float
) -> None:
    """Publish the key that is to take over signing, beside the signing key.

    KEY_FILE is its secret key (only the public part is published). Clients trust both
    keys once they have the keyring, which a new kiro-repo carries: build one. Once
    key_switch_days have passed, put the new key in the key file or secret and run
    `debrepo rebuild`: it signs from then on. One key is announced at a time."""
    from debrepo.app import announce_key

    if (key_file is None) == (not withdraw):
        _fail("give either KEY_FILE or --withdraw", 2)
    ws, out = _workspace(ctx, existing_only=True), _output(ctx)
    if withdraw and not ws.announced_keys():
        out.say("no key is announced; nothing to withdraw")
        return
    fingerprint, dropped, report = announce_key(ws, key_file, wait_seconds=wait_seconds)
    _report(out, report, ws)
    for withdrawn in dropped:
        out.say(
            f"key {withdrawn.upper()} is no longer announced (any kiro-repo built while it was "
            "still installs it: build a new version so that its users drop it)"
        )
    if fingerprint is None or key_file is None:
        out.say("no key is announced now")
        return
    secret = ws.settings.key_secret_id
    switch = (
        f"put {key_file} into secret {secret}"
        if secret
        else f"keep a copy of {ws.settings.key_file}, copy {key_file} over it"
    )
    out.say(
        f"announced key {fingerprint.upper()}: next, `debrepo build-repo-package --version "
        f"NEXT` so that kiro-repo installs it; {ws.settings.key_switch_days:g} days after that "
        f"(key_switch_days), once clients have upgraded, {switch}, and run `debrepo rebuild`"
    )


@key.command("export")
@click.option("--armor/--binary", default=True, show_default=True, help="ASCII-armoured or binary.")
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="File (default stdout).",
)
@click.pass_context
def key_export(ctx: click.Context, armor: bool, output: Path | None) -> None:
    """Export the public key (what clients put in /usr/share/keyrings/), with the key
    announced to take over signing, if any."""
    from debrepo.app import write_output
    from debrepo.services.publish import published_keyring

    ws = _workspace(ctx)
    keyring = published_keyring(ws.existing_signer(), ws.announced_keys())
    data = keyring.armored if armor else keyring.binary
    if output:
        write_output(ws, output, data)
    elif armor:
        click.echo(data.decode(), nl=False)
    elif sys.stdout.isatty():
        _fail("--binary writes bytes a terminal cannot show: use --output FILE or redirect", 2)
    else:
        sys.stdout.buffer.write(data)


@key.command("show")
@click.pass_context
def key_show(ctx: click.Context) -> None:
    """Print the signing key's fingerprint and where it is kept (file or secret), and
    any key announced to take over."""
    ws = _workspace(ctx)
    secret = ws.settings.key_secret_id
    where = f"secret {secret}" if secret else str(ws.settings.key_file)
    signing = ws.existing_signer().fingerprint.lower()
    click.echo(f"{signing.upper()}  {where}")
    for fingerprint, announced in sorted(ws.announced_keys().items()):
        if fingerprint == signing:  # switched in the file or secret, not yet published
            click.echo(
                f"{fingerprint.upper()}  announced {announced.since}, now in {where}: the "
                "next publish (`debrepo rebuild`) signs with it, once the checks allow"
            )
        else:
            click.echo(f"{fingerprint.upper()}  announced {announced.since}, to take over signing")


@cli.command()
@click.option(
    "--dry-run",
    is_flag=True,
    help="Ask the sources and say what would be fetched and published; change nothing.",
)
@click.option("--package", "package_name", default=None, callback=_text, help="Only this package.")
@click.option(
    "--retry-refused",
    is_flag=True,
    help="Download again a version refused for what its file held, even if upstream still "
    "serves that file unchanged.",
)
@wait_option
@click.pass_context
def sync(
    ctx: click.Context,
    dry_run: bool,
    package_name: str | None,
    retry_refused: bool,
    wait_seconds: float,
) -> None:
    """Fetch new versions from every package's source, store and publish them.

    With nothing new, publishes only to re-sign a Release past half its Valid-Until
    window. A version refused for what its file held is not downloaded again while
    upstream serves that file unchanged. Exits 1 when every package checked failed, 3
    when some did (the others were stored and published).
    """
    from debrepo.app import sync as sync_packages
    from debrepo.services.sync import SyncFailedError

    ws, out = _workspace(ctx), _output(ctx)
    try:
        report = sync_packages(
            ws,
            dry_run=dry_run,
            only_package=package_name,
            wait_seconds=wait_seconds,
            retry_refused=retry_refused,
        )
    except SyncFailedError as exc:
        if out.quiet:
            raise  # the one line carries the reasons
        for outcome in exc.report.packages:
            out.say(outcome.line())
        _report(out, exc.report.published, ws)
        if _reasons_shown():
            names = ", ".join(f.package_name for f in exc.report.failures)
            _fail(f"sync failed for every package checked ({names}); the reasons are above", 1)
        raise
    for outcome in report.packages:
        out.say(outcome.line())
    out.say(report.summary())
    _report(out, report.published, ws)
    if report.failures:  # a cron job or timer must notice a package that keeps failing
        if _reasons_shown():
            failed = f"{', '.join(o.package_name for o in report.failures)} (the reasons are above)"
        else:
            failed = "; ".join(f"{o.package_name}: {o.message}" for o in report.failures)
        _fail(f"sync failed for {failed}; the other packages were synced", 3)


def _reasons_shown() -> bool:
    """Whether a terminal just showed each failure's reason on its own line; otherwise the
    error line carries them (a cron job may keep standard error only)."""
    return sys.stdout.isatty() and not _output(click.get_current_context()).quiet


@cli.command("migrate-table")
@click.option(
    "--from-table",
    "old_table",
    required=True,
    help="The old-schema DynamoDB table (one item per version, keyed by `version`); only read.",
)
@click.option(
    "--backup-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every old item here (JSONL) before anything else; must not exist. "
    "Required unless --dry-run.",
)
@click.option("--dry-run", is_flag=True, help="Scan, back up if asked, report; change nothing.")
@click.option(
    "--package-name",
    default="kiro",
    show_default=True,
    help="Package of old items that name none.",
)
@click.option(
    "--skip",
    "skip_versions",
    multiple=True,
    metavar="VERSION",
    help="Leave this old version out (repeatable), e.g. one whose download is gone.",
)
@click.option("--no-publish", is_flag=True, help="Only store the versions; publish later.")
@wait_option
@click.pass_context
def migrate_table(
    ctx: click.Context,
    old_table: str,
    backup_file: Path | None,
    dry_run: bool,
    package_name: str,
    skip_versions: tuple[str, ...],
    no_publish: bool,
    wait_seconds: float,
) -> None:
    """Move the versions of an old-schema DynamoDB table into the store (one-time).

    Each version is downloaded again from its deb_url, checked against the old size and
    checksums, and stored with its old dates, notes and URLs. Versions already in the
    store are skipped, so running it again finishes an interrupted migration. Exits 1
    if any version failed.
    """
    from debrepo.app import migrate_table as migrate

    ws, out = _workspace(ctx), _output(ctx)
    report, published = migrate(
        ws,
        old_table=old_table,
        backup_file=backup_file,
        dry_run=dry_run,
        default_package=package_name,
        skip_versions=skip_versions,
        publish_after=not no_publish,
        wait_seconds=wait_seconds,
    )
    if report.backup_file:
        out.say(f"backed up {report.old_items} old item(s) to {report.backup_file}")
    for old in report.to_migrate:
        if dry_run:
            out.say(f"would migrate {old.package_name} {old.version} from {old.deb_url}")
    for record in report.migrated:
        out.say(f"migrated {record.package_name} {record.version}")
    for package_id, error in report.failed:
        click.echo(f"debrepo: error: {_shown(f'{package_id}: {error}')}", err=True)
    out.say(report.summary())
    _report(out, published, ws)
    if report.failed:
        sys.exit(1)


@cli.command("restore-table")
@click.option(
    "--backup-file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A backup written by migrate-table.",
)
@click.option("--table", "table_name", required=True, help="The old-schema table to write into.")
@click.pass_context
def restore_table(ctx: click.Context, backup_file: Path, table_name: str) -> None:
    """Put the items of a migrate-table backup back into an old-schema table."""
    from debrepo.app import restore_table as restore

    count = restore(table_name, backup_file)
    _output(ctx).say(f"restored {count} item(s) from {backup_file} into {table_name}")


class _Terminated(BaseException):
    """SIGTERM, raised where the program is so that every cleanup runs on the way out."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: run the CLI, turning DebrepoError into one line and an exit code."""
    import signal
    import threading

    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if on_main_thread else None
    try:
        _run(argv)
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _run(argv: Sequence[str] | None) -> None:
    try:
        cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="debrepo",
            standalone_mode=False,
        )
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C into Abort; a declined confirmation is an Abort too.
        if isinstance(exc.__context__, KeyboardInterrupt):
            _fail("interrupted", 130)
        _fail("aborted", 1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DebrepoError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except _Terminated:
        _fail("terminated", 143)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}", 1)


if __name__ == "__main__":
    main()
