#!/usr/bin/env python3
"""Generate tests/fixtures/catalog/runtime-releases.json deterministically.

The fixture is shaped like Astronomer's real releases catalog
(https://updates.astronomer.io/astronomer-runtime):

    {"version": "1.0",
     "runtimeVersions":   {"<A2 tag>": {"metadata": {...}, "migrations": {...}}},
     "runtimeVersionsV3": {"<A3 tag>": {"metadata": {...}, "migrations": {...}}}}

It also carries unknown extra fields at every level (top level, entry, metadata,
migrations) so tests can prove the plugin round-trips fields it does not know.
No clock, no randomness: running it twice gives identical bytes.

Usage: gen_catalog.py [OUTPUT]   (default: tests/fixtures/catalog/runtime-releases.json
                                  relative to the repository root; "-" = stdout)
"""
import datetime
import json
import os
import sys

# Airflow 2 runtimes: (runtime major.minor, number of patch releases, airflow versions by patch)
# Loosely modelled on the real history (4.x = Airflow 2.2 ... 13.x = Airflow 2.10/2.11).
A2_SERIES = [
    ("4.2", 10, ["2.2.5"]),
    ("5.0", 16, ["2.3.0", "2.3.1", "2.3.2", "2.3.3", "2.3.4"]),
    ("6.0", 12, ["2.4.0", "2.4.1", "2.4.2", "2.4.3"]),
    ("7.0", 7, ["2.5.0", "2.5.1", "2.5.2", "2.5.3"]),
    ("8.0", 9, ["2.6.0", "2.6.1", "2.6.2", "2.6.3"]),
    ("9.0", 23, ["2.7.0", "2.7.1", "2.7.2", "2.7.3"]),
    ("10.0", 13, ["2.8.0", "2.8.1", "2.8.2", "2.8.3", "2.8.4"]),
    ("11.0", 21, ["2.9.0", "2.9.1", "2.9.2", "2.9.3"]),
    ("12.0", 12, ["2.10.0", "2.10.1", "2.10.2", "2.10.3", "2.10.4", "2.10.5"]),
    ("13.0", 10, ["2.10.5", "2.11.0", "2.11.1", "2.11.2"]),
]
# Airflow 3 runtimes: (series, number of builds, airflow versions by build)
A3_SERIES = [
    ("3.0", 16, ["3.0.0", "3.0.1", "3.0.2", "3.0.3", "3.0.4", "3.0.5", "3.0.6"]),
    ("3.1", 9, ["3.1.0", "3.1.1", "3.1.2", "3.1.3"]),
]
# Pre-releases (alpha/beta channels)
A2_PRERELEASES = [("13.0.0-alpha1", "2.11.0", "alpha"), ("13.0.0-beta1", "2.11.0", "beta")]
A3_PRERELEASES = [("3.2-1-alpha1", "3.2.0", "alpha"), ("3.2-1-beta1", "3.2.0", "beta")]

YANKED = {"5.5.0", "9.3.0", "10.7.0", "11.4.0", "12.6.0", "3.0-3", "3.1-4"}
LTS_MAJORS = {5, 9, 11}
DEPRECATED_MAJORS = {4, 6, 7, 8}

EPOCH = datetime.date(2021, 11, 1)


def release_date(index):
    # one release every ~9 days from EPOCH, deterministic
    return (EPOCH + datetime.timedelta(days=9 * index)).isoformat()


def a2_tag(series, patch):
    # Airflow 2 runtime tags bump the minor per release in the real catalog
    # (9.1.0, 9.2.0, ...); the 4.2.x series bumped the patch number.
    major, minor = series.split(".")
    if major == "4":
        return f"4.2.{patch}"
    return f"{major}.{patch}.0"


def build():
    index = 0
    a2 = {}
    for series, count, airflows in A2_SERIES:
        major = int(series.split(".")[0])
        for patch in range(count):
            tag = a2_tag(series, patch)
            airflow = airflows[min(patch * len(airflows) // count, len(airflows) - 1)]
            if major in DEPRECATED_MAJORS:
                channel = "deprecated"
            elif major in LTS_MAJORS:
                channel = "lts"
            else:
                channel = "stable"
            meta = {
                "airflowVersion": airflow,
                "channel": channel,
                "releaseDate": release_date(index),
                "yanked": tag in YANKED,
            }
            if index % 5 == 0:
                meta["x-buildNumber"] = 1000 + index  # unknown metadata field (number)
            if index % 11 == 3:
                meta["x-notes"] = {"security": ["CVE-2024-0000"], "rebuilt": None}
            entry = {"metadata": meta,
                     "migrations": {"airflowDatabase": patch == 0 or index % 6 == 0}}
            if index % 7 == 0:
                entry["x-changelogUrl"] = f"https://example.invalid/runtime/{tag}"
            if index % 13 == 4:
                entry["migrations"]["x-downgradeSafe"] = False
            a2[tag] = entry
            index += 1
        if series == "12.0":
            for tag, airflow, channel in A2_PRERELEASES:
                a2[tag] = {"metadata": {"airflowVersion": airflow, "channel": channel,
                                        "releaseDate": release_date(index), "yanked": False},
                           "migrations": {"airflowDatabase": True}}
                index += 1

    a3 = {}
    for series, count, airflows in A3_SERIES:
        for build_no in range(1, count + 1):
            tag = f"{series}-{build_no}"
            airflow = airflows[min((build_no - 1) * len(airflows) // count, len(airflows) - 1)]
            meta = {
                "airflowVersion": airflow,
                "channel": "deprecated" if series == "3.0" and build_no <= 4 else "stable",
                "releaseDate": release_date(index),
                "yanked": tag in YANKED,
                "pythonVersions": ["3.11", "3.12"] if series == "3.0" else ["3.12", "3.13"],
                "defaultPythonVersion": "3.12",
                "endOfMaintenance": release_date(index + 60),
                "endOfBasicSupport": release_date(index + 90),
            }
            if build_no % 4 == 0:
                meta["x-imageFlavours"] = ["base", "slim"]
            entry = {"metadata": meta,
                     "migrations": {"airflowDatabase": build_no == 1 or build_no % 5 == 0}}
            if build_no % 3 == 0:
                entry["x-providers"] = {"apache-airflow-providers-cncf-kubernetes": "10.4.0"}
            a3[tag] = entry
            index += 1
    for tag, airflow, channel in A3_PRERELEASES:
        a3[tag] = {"metadata": {"airflowVersion": airflow, "channel": channel,
                                "releaseDate": release_date(index), "yanked": False,
                                "pythonVersions": ["3.12", "3.13"], "defaultPythonVersion": "3.12",
                                "endOfMaintenance": "", "endOfBasicSupport": ""},
                   "migrations": {"airflowDatabase": True}}
        index += 1

    return {
        "version": "1.0",
        "x-generatedBy": "scripts/testbed-lib/gen_catalog.py (astro-sha test fixture, not real data)",
        "runtimeVersions": a2,
        "x-mirrorHint": {"airflow2": "quay.io/astronomer/astro-runtime",
                         "airflow3": "astrocrpublic.azurecr.io/runtime", "weight": 1.5},
        "runtimeVersionsV3": a3,
    }


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        root, "tests", "fixtures", "catalog", "runtime-releases.json")
    text = json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
    if out == "-":
        sys.stdout.write(text)
    else:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
        cat = json.loads(text)
        print(f"wrote {out}: {len(cat['runtimeVersions'])} runtimeVersions, "
              f"{len(cat['runtimeVersionsV3'])} runtimeVersionsV3", file=sys.stderr)


if __name__ == "__main__":
    main()
