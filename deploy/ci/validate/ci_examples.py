"""deploy/ci-examples/: each file is valid YAML, runs `checker verify` with --json and
`--output junit > FILE`, and keeps both reports as artifacts even when the check fails
(GitLab also reads the JUnit one as its test report)."""

import re

import yaml

from .common import DEPLOY


def _commands(steps) -> list[str]:
    return [s.get("run", "") if isinstance(s, dict) else str(s) for s in steps or []]


def check_ci_examples(rep) -> None:
    d = DEPLOY / "ci-examples"
    files = sorted(d.glob("*.y*ml")) if d.is_dir() else []
    rep.check(len(files) >= 2, "ci-examples", "expected a GitHub Actions and a GitLab CI example")
    for f in files:
        name = f"ci-examples/{f.name}"
        try:
            doc = yaml.safe_load(f.read_text())
        except yaml.YAMLError as e:
            rep.check(False, name, f"not valid YAML: {e}")
            continue
        if not isinstance(doc, dict):
            rep.check(False, name, "not a YAML mapping")
            continue
        if "jobs" in doc:  # GitHub Actions
            for job_name, job in doc["jobs"].items():
                steps = job.get("steps", [])
                runs = " ".join(_commands(steps))
                m = re.search(r"--json\s+(\S+)", runs)
                rep.check("checker verify" in runs and m is not None, name,
                          f"job {job_name} runs no `checker verify ... --json FILE`")
                uploads = [s for s in steps if isinstance(s, dict)
                           and str(s.get("uses", "")).startswith("actions/upload-artifact")]
                rep.check(any(m and s.get("with", {}).get("path") == m.group(1)
                              and s.get("if") == "always()" for s in uploads), name,
                          f"job {job_name} does not keep the JSON report with if: always()")
                j = re.search(r"--output junit\s*>\s*(\S+)", runs)
                rep.check(any(j and s.get("with", {}).get("path") == j.group(1)
                              and s.get("if") == "always()" for s in uploads), name,
                          f"job {job_name} does not keep a JUnit report (--output junit > FILE) with if: always()")
        else:  # GitLab CI
            jobs = {k: v for k, v in doc.items() if isinstance(v, dict) and "script" in v}
            rep.check(bool(jobs), name, "no GitLab job with a script")
            for job_name, job in jobs.items():
                runs = " ".join(_commands(job["script"]))
                m = re.search(r"--json\s+(\S+)", runs)
                rep.check("checker verify" in runs and m is not None, name,
                          f"job {job_name} runs no `checker verify ... --json FILE`")
                art = job.get("artifacts", {})
                rep.check(m is not None and m.group(1) in art.get("paths", [])
                          and art.get("when") == "always", name,
                          f"job {job_name} does not keep the JSON report with when: always")
                j = re.search(r"--output junit\s*>\s*(\S+)", runs)
                rep.check(j is not None and (art.get("reports") or {}).get("junit") == j.group(1),
                          name, f"job {job_name} does not declare its JUnit report (--output junit > FILE) as reports: junit")
