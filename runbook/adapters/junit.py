"""Count JUnit XML results (pytest's and Maven Surefire's shapes), parsed with defusedxml.

Every ``<testcase>`` anywhere in the document counts once per (classname, name); a case's
status is error, else failure, else skipped, else passed. Aggregate attributes on
``<testsuite>`` are ignored: they lie when reports are merged by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException


class JUnitError(Exception):
    """The file is missing, unreadable or not JUnit XML."""


@dataclass
class JUnitCounts:
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    not_passed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errors + self.skipped

    @property
    def green(self) -> bool:
        return self.total > 0 and self.passed == self.total

    def summary(self) -> str:
        extra = [f"{n} {w}" for n, w in ((self.failed, "failed"), (self.errors, "errors"),
                                          (self.skipped, "skipped")) if n]
        return f"{self.passed}/{self.total} passed" + (f" ({', '.join(extra)})" if extra else "")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def count(path: Path) -> JUnitCounts:
    """Walk every testcase of ``path`` and count it once by its final status."""
    if not path.is_file():
        raise JUnitError(f"{path} is missing")
    try:
        root = ElementTree.parse(str(path)).getroot()
    except DefusedXmlException as e:
        raise JUnitError(f"{path} refused: unsafe XML ({type(e).__name__})") from None
    except ElementTree.ParseError as e:
        raise JUnitError(f"{path} is not well-formed XML ({e})") from None
    except OSError as e:
        raise JUnitError(f"cannot read {path}: {e.strerror or e}") from None
    if _local(root.tag) not in ("testsuites", "testsuite"):
        raise JUnitError(f"{path} is not JUnit XML (root element <{_local(root.tag)}>)")
    seen: dict[tuple[str, str], str] = {}
    for case in root.iter():
        if _local(case.tag) != "testcase":
            continue
        kids = {_local(c.tag) for c in case}
        status = ("error" if "error" in kids else "failure" if "failure" in kids
                  else "skipped" if "skipped" in kids else "passed")
        key = (case.get("classname", ""), case.get("name", ""))
        seen[key] = status  # a re-run case counts once, by its last report
    out = JUnitCounts()
    for (cls, name), status in seen.items():
        if status == "passed":
            out.passed += 1
            continue
        setattr(out, {"error": "errors", "failure": "failed", "skipped": "skipped"}[status],
                getattr(out, {"error": "errors", "failure": "failed",
                              "skipped": "skipped"}[status]) + 1)
        out.not_passed.append(f"{status}: {cls + '.' if cls else ''}{name}")
    return out
