"""The instructions page at the repository root."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from string import Template

from debrepo.core.layout import CONVENIENCE_COPY, CONVENIENCE_PACKAGE
from debrepo.model import PackageRecord

# templates/kiro-repo/kiro.sources as shipped (a test holds them equal): the page gives
# this APT source when the templates cannot be read where the publish runs.
DEFAULT_SOURCES_TEMPLATE = """\
# Kiro APT repository, installed by the kiro-repo package.
# Updates to kiro-repo keep this file and the signing key current.
Types: deb
URIs: ${repo_url}
Suites: ${suite}
Components: ${component}
Signed-By: ${keyring_path}
"""


def apt_source_values(
    *, repo_url: str, suite: str, component: str, key_name: str
) -> dict[str, str]:
    """The placeholders a repository's APT source is filled from, for kiro-repo and the
    install page alike."""
    return {
        "repo_url": repo_url.rstrip("/"),
        "suite": suite,
        "component": component,
        "keyring_path": f"/usr/share/keyrings/{key_name}-archive-keyring.gpg",
        "key_name": key_name,
    }


# What the page tells a new user to install once apt knows the repository, in order of
# preference; any other single package is named too.
_PRODUCTS = ("kiro", "kiro-cli")


def _product(names: Sequence[str]) -> str | None:
    """The package the install steps end with; None when there is no obvious one."""
    for name in _PRODUCTS:
        if name in names:
            return name
    others = [name for name in names if name != CONVENIENCE_PACKAGE]
    return others[0] if len(others) == 1 else None


def render_index_html(
    *,
    public_url: str,
    label: str,
    suite: str,
    component: str,
    keyring_name: str,
    fingerprint: str,
    latest: Sequence[PackageRecord],
    announced: Sequence[str] = (),
    sources_file: str | None = None,
    architectures: Sequence[str] = (),
) -> bytes:
    """Install instructions: get kiro-repo.deb, install it, apt update, then apt install
    the product published here (kiro, else kiro-cli, else the only other package).
    `sources_file`: the APT source kiro-repo installs, given for a set-up by hand."""
    url = escape(public_url.rstrip("/"))
    product = _product([r.package_name for r in latest])
    if product is None:
        intro = (
            "Download the repository package and install it; apt then offers every package below:"
        )
        install = ""
    else:
        shown = "Kiro" if product == "kiro" else f"<code>{escape(product)}</code>"
        intro = f"Download the repository package, install it, then install {shown}:"
        install = f"\nsudo apt install {escape(product)}"
    keyring = escape(keyring_name)
    # kiro-repo installs `<key_name>.sources`: set up by hand, the same file, so that
    # installing kiro-repo later replaces it instead of adding a duplicate source.
    key_name = escape(keyring_name.removesuffix("-archive-keyring"))
    sources = f"/etc/apt/sources.list.d/{key_name}.sources"
    names = {r.package_name for r in latest}
    if CONVENIENCE_PACKAGE in names:
        quick = f"""  <h2>Install</h2>
  <p>{intro}</p>
  <pre>curl -fsSLO {url}/{CONVENIENCE_COPY}
sudo apt install ./{CONVENIENCE_COPY}
sudo apt update{install}</pre>
  <p>The repository package adds <code>{sources}</code> and the
  signing key <code>/usr/share/keyrings/{keyring}.gpg</code>, and keeps both up
  to date with <code>apt upgrade</code>.</p>
  <h2>Set up by hand</h2>"""
        after_manual = ""
    else:  # no repository package published here: no kiro-repo.deb to point at
        quick = "  <h2>Install</h2>\n  <p>Add the signing key and the APT source:</p>"
        after_manual = f"\n  <pre>sudo apt update{install}</pre>"
    rows = "\n".join(
        f"      <tr><td>{escape(r.package_name)}</td><td>{escape(r.version)}</td>"
        f"<td>{escape(r.architecture)}</td><td>{escape(r.description.splitlines()[0])}</td></tr>"
        for r in latest
    )
    if sources_file is None:
        sources_file = Template(DEFAULT_SOURCES_TEMPLATE).substitute(
            apt_source_values(
                repo_url=public_url,
                suite=suite,
                component=component,
                key_name=keyring_name.removesuffix("-archive-keyring"),
            )
        )
    manual = escape(sources_file.rstrip("\n"))
    end = _heredoc_end(sources_file)
    next_keys = "".join(
        f"\n  <p>Next signing key (in the keyring already): <code>{escape(fpr.upper())}</code>. "
        f"If you set the key up by hand, fetch <code>{keyring}.gpg</code> again (as above) "
        "before it takes over.</p>"
        for fpr in announced
    )
    machines = (
        f"\n  <p>For {escape(', '.join(architectures))} machines only: apt on another "
        "architecture finds none of these packages.</p>"
        if architectures
        else ""
    )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{escape(label)} APT repository</title>
  <style>
    body {{ font-family: sans-serif; max-width: 50rem; margin: 2rem auto; padding: 0 1rem; }}
    pre {{ background: #f4f4f4; padding: 1rem; overflow-x: auto; }}
    td, th {{ padding: 0.2rem 0.8rem; text-align: left; }}
  </style>
</head>
<body>
  <h1>{escape(label)} APT repository</h1>
{quick}
  <pre>curl -fsSL {url}/{keyring}.gpg | sudo tee /usr/share/keyrings/{keyring}.gpg &gt;/dev/null
sudo tee {sources} &lt;&lt;'{end}'
{manual}
{end}</pre>{after_manual}
  <p>Signing key fingerprint: <code>{escape(fingerprint.upper())}</code></p>{next_keys}
  <h2>Packages</h2>{machines}
  <table>
    <tr><th>Package</th><th>Latest version</th><th>Architecture</th><th>Description</th></tr>
{rows}
  </table>
</body>
</html>
"""
    return page.encode("utf-8")


def _heredoc_end(text: str) -> str:
    """A here-document delimiter no line of `text` is: a template line reading `EOF`
    would otherwise end the copied command early."""
    lines = set(text.split("\n"))
    end, number = "EOF", 1
    while end in lines:
        end, number = f"EOF{number}", number + 1
    return end
