"""Scenario files: TOML (tomllib) -> one resolved dict with every default filled in.

load_scenario(path, overrides) reads a file, applies `--set KEY=VALUE` overrides by dotted
path and checks every key; resolve(dict) does the same for a dict built in Python (the
capacity search). A bad scenario raises ScenarioError naming the key and the reason; the
CLI turns that into exit code 2. Every key, its default and meaning: docs/bench.md.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

BASE_SYSTEMS = ("direct", "ringmta", "postfix")
DURABILITY = ("batch", "always", "none")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DOMAIN_RE = re.compile(r"^(\*|(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*)$")
DURATION_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*(ns|us|ms|s|m|h)?\s*$")
UNIT_S = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
BOUNCE_DOMAIN = "bounces.ringmta.test"   # the loadgen's sender domain: DSNs go to their own sink


class ScenarioError(Exception):
    """A scenario key with a bad value: str() is 'KEY: reason'."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


# ---- value checks: each takes (key, value) and returns the resolved value ---------------------

def _int(lo=None, hi=None):
    def check(key, v):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ScenarioError(key, f"must be a whole number, not {v!r}")
        if lo is not None and v < lo or hi is not None and v > hi:
            raise ScenarioError(key, f"must be between {lo} and {hi}, not {v}")
        return v
    return check


def _num(lo=None, hi=None, allow_none=False):
    def check(key, v):
        if v is None and allow_none:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ScenarioError(key, f"must be a number, not {v!r}")
        if lo is not None and v < lo or hi is not None and v > hi:
            raise ScenarioError(key, f"must be between {lo} and {hi}, not {v}")
        return float(v)
    return check


def _seconds(lo=0.0, hi=86400.0):
    """A duration: a number of seconds or a string with a unit ("500ms", "1.5s", "2m")."""
    def check(key, v):
        if isinstance(v, str):
            m = DURATION_RE.match(v)
            if not m:
                raise ScenarioError(key, f"{v!r} is not a duration (10, 1.5, \"500ms\", \"2m\")")
            v = float(m.group(1)) * UNIT_S[m.group(2)]
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ScenarioError(key, f"must be a duration in seconds or a string with a unit, not {v!r}")
        if v < lo or v > hi:
            raise ScenarioError(key, f"must be between {lo:g} s and {hi:g} s, not {v:g} s")
        return float(v)
    return check


def _bool(key, v):
    if not isinstance(v, bool):
        raise ScenarioError(key, f"must be true or false, not {v!r}")
    return v


def _str(choices=None, pattern=None, what=""):
    def check(key, v):
        if not isinstance(v, str):
            raise ScenarioError(key, f"must be a string, not {v!r}")
        if choices is not None and v not in choices:
            raise ScenarioError(key, f"must be one of {', '.join(choices)}, not {v!r}")
        if pattern is not None and not pattern.match(v):
            raise ScenarioError(key, f"{v!r} is not {what}")
        return v
    return check


def _str_or_int(key, v):
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise ScenarioError(key, f"must be a string or a whole number, not {v!r}")
    s = str(v).strip()
    if not s:
        raise ScenarioError(key, "must not be empty")
    return s


def _str_list(item=None, nonempty=False):
    def check(key, v):
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ScenarioError(key, f"must be a list of strings, not {v!r}")
        if nonempty and not v:
            raise ScenarioError(key, "must not be empty")
        return [item(f"{key}[{i}]", x) if item else x for i, x in enumerate(v)]
    return check


def _weighted_domain(key, v):
    dom, _, w = v.partition(":")
    if not DOMAIN_RE.match(dom) or dom.startswith("*"):
        raise ScenarioError(key, f"{dom!r} is not a domain name")
    if w and (not w.isdigit() or not 1 <= int(w) <= 1000000):
        raise ScenarioError(key, f"weight {w!r} must be a whole number 1-1000000")
    return v


def _route_domain(key, v):
    if not DOMAIN_RE.match(v):
        raise ScenarioError(key, f"{v!r} is not a domain, *.domain or *")
    return v


def _str_table(key, v):
    if not isinstance(v, dict) or not all(isinstance(x, (str, int)) and not isinstance(x, bool)
                                          for x in v.values()):
        raise ScenarioError(key, f"must be a table of NAME = \"value\", not {v!r}")
    return {k: str(x) for k, x in v.items()}


# ---- the schema: section -> {key: (check, default)} -------------------------------------------

LOAD = {
    "connections": (_int(1, 100000), 50),
    "rate": (_num(0, 10_000_000), 0.0),
    "arrival": (_str(("constant", "poisson")), "constant"),
    "messages": (_int(0, 1_000_000_000), 0),
    "duration": (_seconds(0, 86400), 10.0),
    "warmup": (_seconds(0, 86400), 0.0),
    "size": (_str_or_int, "1024"),
    "recipients": (_str_or_int, "1"),
    "domains": (_str_list(_weighted_domain, nonempty=True), ["ringmta.test"]),
    "threads": (_int(1, 64), 1),
    "pipelining": (_bool, True),
    "bdat": (_bool, False),
    "timeout": (_seconds(0.001, 3600), 10.0),
    "messages_per_connection": (_int(0, 1_000_000_000), 0),
    "extra_args": (_str_list(), []),
}

SINK = {
    "name": (_str(pattern=NAME_RE, what="a name (letters, digits, - _ .)"), None),
    "domains": (_str_list(_route_domain, nonempty=True), ["*"]),
    "threads": (_int(1, 64), 2),
    "tempfail_rate": (_num(0, 1), 0.0),
    "permfail_rate": (_num(0, 1), 0.0),
    "disconnect_rate": (_num(0, 1), 0.0),
    "delay": (_str(), ""),
    "delay_end_of_data": (_str(), ""),
    "extra_args": (_str_list(), []),
}

RINGMTA = {
    "durability": (_str(DURABILITY), "batch"),
    "threads": (_int(1, 64), 2),
    "extra_args": (_str_list(), []),
}

POSTFIX = {
    "process_limit": (_int(10, 10000), 200),
    "main_cf": (_str_table, {}),
}

RUN = {
    "drain_timeout": (_seconds(0, 3600), 60.0),
    "start_timeout": (_seconds(0.1, 600), 30.0),
    "poll_interval": (_seconds(0.005, 5), 0.05),
    "keep_files": (_bool, False),
}

EXPECT = {
    "min_accepted_msg_s": (_num(0, allow_none=True), None),
    "min_delivered_msg_s": (_num(0, allow_none=True), None),
    "max_accept_p99_ms": (_num(0, allow_none=True), None),
    "max_error_rate": (_num(0, 1, allow_none=True), None),
    "max_duplicated": (_num(0, allow_none=True), None),
    "zero_lost": (_bool, True),
}

TOP = {
    "name": (_str(pattern=NAME_RE, what="a name (letters, digits, - _ .)"), None),
    "description": (_str(), ""),
    "systems": (_str_list(nonempty=True), list(BASE_SYSTEMS)),
    "repeat": (_int(1, 1000), 1),
    "seed": (_int(0, 2**63 - 1), 1),
}
SECTIONS = {"load": LOAD, "ringmta": RINGMTA, "postfix": POSTFIX, "run": RUN, "expect": EXPECT}


def _fill(raw: dict, schema: dict, prefix: str, extra: tuple = ()) -> dict:
    if not isinstance(raw, dict):
        raise ScenarioError(prefix.rstrip("."), "must be a table")
    for k in raw:
        if k not in schema and k not in extra:
            raise ScenarioError(prefix + k, f"unknown key (known: {', '.join(list(schema) + list(extra))})")
    out = {}
    for k, (check, default) in schema.items():
        out[k] = check(prefix + k, raw[k]) if k in raw else copy.deepcopy(default)
    return out


def system_base(name: str) -> str:
    """'ringmta-batch' -> 'ringmta'; 'direct' -> 'direct'."""
    return name.split("-", 1)[0]


def resolve(raw: dict, default_name: str = "scenario") -> dict:
    """A raw scenario dict (as parsed from TOML) -> the resolved scenario, or ScenarioError."""
    raw = copy.deepcopy(raw)
    top = {k: v for k, v in raw.items() if k not in SECTIONS and k != "sinks"}
    sc = _fill(top, TOP, "")
    if sc["name"] is None:
        sc["name"] = default_name if NAME_RE.match(default_name) else "scenario"
    for sec, schema in SECTIONS.items():
        extra = ("variants",) if sec == "ringmta" else (tuple(raw.get("expect", {}).keys() - EXPECT.keys())
                                                        if sec == "expect" else ())
        sc[sec] = _fill(raw.get(sec, {}), schema, sec + ".", extra)

    # [[sinks]]
    sinks_raw = raw.get("sinks", [{"name": "sink"}])
    if not isinstance(sinks_raw, list) or not sinks_raw:
        raise ScenarioError("sinks", "must be a non-empty array of tables ([[sinks]])")
    sinks, names = [], set()
    for i, s in enumerate(sinks_raw):
        r = _fill(s, SINK, f"sinks[{i}].")
        if r["name"] is None:
            r["name"] = "sink" if len(sinks_raw) == 1 else f"sink{i}"
        if r["name"] in names or r["name"] == "bounces":
            raise ScenarioError(f"sinks[{i}].name", f"{r['name']!r} is used twice (or reserved)")
        names.add(r["name"])
        if r["tempfail_rate"] + r["permfail_rate"] + r["disconnect_rate"] > 1:
            raise ScenarioError(f"sinks[{i}]", "tempfail_rate + permfail_rate + disconnect_rate exceed 1")
        sinks.append(r)
    sc["sinks"] = sinks

    # Every load domain must have a sink (the relays route by domain).
    served = [d for s in sinks for d in s["domains"]]
    for i, d in enumerate(sc["load"]["domains"]):
        dom = d.partition(":")[0]
        if route_for(dom, served) is None:
            raise ScenarioError(f"load.domains[{i}]", f"no sink serves {dom!r} (add it to a [[sinks]] domains list, or \"*\")")
    if len(served) != len(set(served)):
        raise ScenarioError("sinks", "a domain is listed by two sinks")

    # [ringmta.variants.NAME] tables: overrides of durability / threads / extra_args.
    variants_raw = raw.get("ringmta", {}).get("variants", {})
    if not isinstance(variants_raw, dict):
        raise ScenarioError("ringmta.variants", "must be a table of tables")
    variants = {}
    for vn, v in variants_raw.items():
        if not NAME_RE.match(vn) or "-" in vn:
            raise ScenarioError(f"ringmta.variants.{vn}", "variant names are letters, digits, _ and .")
        if not isinstance(v, dict):
            raise ScenarioError(f"ringmta.variants.{vn}", "must be a table")
        base = {k: sc["ringmta"][k] for k in RINGMTA}
        filled = _fill(v, {k: (c, base[k]) for k, (c, _) in RINGMTA.items()}, f"ringmta.variants.{vn}.")
        variants[vn] = filled
    sc["ringmta"]["variants"] = variants

    # systems
    seen = set()
    for i, name in enumerate(sc["systems"]):
        key = f"systems[{i}]"
        base = system_base(name)
        if base not in BASE_SYSTEMS or (base != "ringmta" and name != base):
            raise ScenarioError(key, f"{name!r} is not direct, postfix, ringmta or ringmta-VARIANT")
        if base == "ringmta" and name != "ringmta":
            vn = name.split("-", 1)[1]
            if vn not in variants and vn not in DURABILITY:
                raise ScenarioError(key, f"no [ringmta.variants.{vn}] table, and {vn!r} is not a durability mode")
        if name in seen:
            raise ScenarioError(key, f"{name!r} is listed twice")
        seen.add(name)

    # [expect.SYSTEM] tables: the same keys, for one system (or every ringmta variant).
    per = {}
    for name, v in raw.get("expect", {}).items():
        if name in EXPECT:
            continue
        if not isinstance(v, dict):
            raise ScenarioError(f"expect.{name}", f"unknown key (known: {', '.join(EXPECT)}, or a [expect.SYSTEM] table)")
        if name not in seen and name not in BASE_SYSTEMS:
            raise ScenarioError(f"expect.{name}", f"{name!r} is not a system of this scenario ({', '.join(sc['systems'])})")
        base = {k: sc["expect"][k] for k in EXPECT}
        per[name] = _fill(v, {k: (c, base[k]) for k, (c, _) in EXPECT.items()}, f"expect.{name}.")
    sc["expect"] = {k: sc["expect"][k] for k in EXPECT}
    sc["expect"]["systems"] = per
    for name, e in [("expect", sc["expect"])] + [(f"expect.{n}", e) for n, e in per.items()]:
        if e["zero_lost"] is not True:
            raise ScenarioError(f"{name}.zero_lost", "a lost or corrupted message always fails a run")

    load = sc["load"]
    if load["messages"] == 0 and load["duration"] == 0:
        raise ScenarioError("load.duration", "0 with load.messages = 0 would run forever")
    if load["duration"] and load["warmup"] >= load["duration"]:
        raise ScenarioError("load.warmup", f"must be shorter than load.duration ({load['duration']:g} s)")
    if load["rate"] == 0 and load["arrival"] != "constant":
        raise ScenarioError("load.arrival", "poisson arrivals need an open loop (load.rate > 0)")
    if load["threads"] > load["connections"]:
        raise ScenarioError("load.threads", "more threads than connections")
    return sc


def route_for(domain: str, patterns: list[str]) -> str | None:
    """The sink pattern that takes `domain`: exact, then *.parent, then *."""
    if domain in patterns:
        return domain
    parts = domain.split(".")
    for i in range(1, len(parts)):
        p = "*." + ".".join(parts[i:])
        if p in patterns:
            return p
    return "*" if "*" in patterns else None


def expectations(sc: dict, system: str) -> dict:
    """The expectations for one system: [expect.NAME], else [expect.BASE], else [expect]."""
    per = sc["expect"]["systems"]
    e = per.get(system) or per.get(system_base(system))
    if e is None:
        e = {k: v for k, v in sc["expect"].items() if k != "systems"}
    return e


def ringmta_settings(sc: dict, system: str) -> dict:
    """durability / threads / extra_args of a ringmta system name."""
    r = sc["ringmta"]
    s = {k: copy.deepcopy(r[k]) for k in RINGMTA}
    if system != "ringmta":
        vn = system.split("-", 1)[1]
        if vn in r["variants"]:
            s.update(copy.deepcopy(r["variants"][vn]))
        else:
            s["durability"] = vn
    return s


# ---- files and overrides --------------------------------------------------------------------

def parse_override(text: str) -> tuple[list[str], object]:
    """'load.rate=2000' -> (['load', 'rate'], 2000). The value is read as a TOML value; what is
    not one (a bare word such as poisson) is taken as a string."""
    key, eq, value = text.partition("=")
    key = key.strip()
    if not eq or not key:
        raise ScenarioError(text, "--set wants KEY=VALUE (e.g. load.rate=2000)")
    try:
        v = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        v = value.strip()
    return key.split("."), v


def apply_override(raw: dict, path: list[str], value) -> None:
    key = ".".join(path)
    node = raw
    for i, part in enumerate(path[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ScenarioError(key, f"{part!r} is not an index of {'.'.join(path[:i])} (0-{len(node) - 1})")
            node = node[int(part)]
            continue
        if part == "sinks" and "sinks" not in node:
            node["sinks"] = [{"name": "sink"}]
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, (dict, list)):
            raise ScenarioError(key, f"{'.'.join(path[:i + 1])} is not a table")
        node = nxt
    last = path[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ScenarioError(key, "not an index of the list")
        node[int(last)] = value
    else:
        node[last] = value


def load_scenario(path, overrides: list[str] | None = None) -> dict:
    """Read a scenario file, apply `KEY=VALUE` overrides, resolve. Raises ScenarioError
    (key 'file' when the file cannot be read or is not TOML)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            raw = tomllib.load(f)
    except OSError as e:
        raise ScenarioError("file", f"cannot read {p}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError("file", f"{p} is not valid TOML: {e}") from None
    for o in overrides or []:
        path_parts, value = parse_override(o)
        apply_override(raw, path_parts, value)
    return resolve(raw, default_name=p.stem)
