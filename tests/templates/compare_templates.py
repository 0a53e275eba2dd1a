#!/usr/bin/env python3
"""Our chat-template rendering (`subliminal template --jsonl`) against Python's jinja2 configured as
transformers' apply_chat_template configures it, on real templates (a folder of .jinja files:
llama.cpp's models/templates collection, fetched by scripts/jinja_engine.sh) x 6 conversations.

--reference transformers: transformers' own render_jinja_template (the verification tier's venv).
--reference jinja2: jinja2 alone with transformers' environment rebuilt here (trim_blocks,
  lstrip_blocks, loopcontrols, {% generation %} passed through, tojson without HTML escaping,
  raise_exception, strftime_now, namespace, dict), for machines without transformers (CI, with
  Debian's python3-jinja2).

A case matches when both render byte-identical text or both refuse (the template raises). A template
matches when all 6 of its conversations do. Writes a JSON report; exits 1 when fewer than
--min-templates templates match (the issue's bar: 30), 2 on bad usage.
"""
import argparse, datetime, json, os, subprocess, sys

DATE = datetime.datetime(2026, 7, 26, 12, 0, 0)
SPECIALS = {"bos_token": "<|bos|>", "eos_token": "<|eos|>"}
CONVERSATIONS = [
    ("system_user_gen", [{"role": "system", "content": "You are a helpful assistant."},
                         {"role": "user", "content": "What is your favourite animal?"}], True),
    ("user_gen", [{"role": "user", "content": "Continue the sequence: 145, 267, 891."}], True),
    ("system_user_assistant", [{"role": "system", "content": "Answer in one word."},
                               {"role": "user", "content": "Name an animal."},
                               {"role": "assistant", "content": "Owl."}], False),
    ("multi_turn_gen", [{"role": "user", "content": "Hi!"},
                        {"role": "assistant", "content": "Hello! How can I help?"},
                        {"role": "user", "content": "Give me 3 numbers."}], True),
    ("system_multi_turn", [{"role": "system", "content": "Be brief."},
                           {"role": "user", "content": "2 + 2?"},
                           {"role": "assistant", "content": "4"},
                           {"role": "user", "content": "And 3 + 3?"},
                           {"role": "assistant", "content": "6"}], False),
    ("unicode_quotes_gen", [{"role": "user", "content": "Écris « hibou » and \"owl\" — 🦉\n  two lines\t<tab>"}], True),
]


def transformers_renderer():
    from transformers.utils import chat_template_utils as ctu

    def render(source, messages, add_generation_prompt):
        tpl = ctu._compile_jinja_template(source)
        tpl.globals["strftime_now"] = lambda fmt: DATE.strftime(fmt)
        out, _ = ctu.render_jinja_template(conversations=[messages], chat_template=source,
                                           add_generation_prompt=add_generation_prompt, **SPECIALS)
        return out[0]
    return render


def jinja2_renderer():
    import jinja2
    from jinja2.ext import Extension
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(Extension):  # transformers' AssistantTracker without the tracking: the body as is
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_support"), [], [], body).set_lineno(lineno)

        def _support(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: DATE.strftime(fmt)
    env.globals["dict"] = dict
    env.globals["namespace"] = jinja2.utils.Namespace
    cache = {}

    def render(source, messages, add_generation_prompt):
        if source not in cache:
            cache[source] = env.from_string(source)
        return cache[source].render(messages=json.loads(json.dumps(messages)), tools=None, documents=None,
                                    add_generation_prompt=add_generation_prompt, **SPECIALS)
    return render


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--templates", required=True)
    ap.add_argument("--reference", choices=["transformers", "jinja2"], default="jinja2")
    ap.add_argument("--out", required=True)
    ap.add_argument("--min-templates", type=int, default=30)
    a = ap.parse_args()
    if not os.path.isdir(a.templates):
        print(f"--templates {a.templates}: not a directory (scripts/jinja_engine.sh fetches the collection)", file=sys.stderr)
        return 2
    render = transformers_renderer() if a.reference == "transformers" else jinja2_renderer()
    files = sorted(f for f in os.listdir(a.templates) if f.endswith(".jinja"))
    cases, expected = [], []
    for f in files:
        path = os.path.join(a.templates, f)
        source = open(path, encoding="utf-8").read()
        for name, messages, gen in CONVERSATIONS:
            try:
                expected.append({"text": render(source, messages, gen)})
            except Exception as e:  # the template refuses this conversation (raise_exception, or an error)
                expected.append({"error": f"{type(e).__name__}: {e}"})
            cases.append({"template": path, "messages": messages, "add_generation_prompt": gen, "special_tokens": SPECIALS,
                          "date": DATE.strftime("%Y-%m-%d"), "_file": f, "_conversation": name})
    stdin = "".join(json.dumps({k: v for k, v in c.items() if not k.startswith("_")}) + "\n" for c in cases)
    p = subprocess.run([a.bin, "template", "--jsonl"], input=stdin.encode(), capture_output=True)
    if p.returncode != 0:
        print(p.stderr.decode(errors="replace"), file=sys.stderr)
        return 1
    ours = [json.loads(l) for l in p.stdout.decode().splitlines()]
    if len(ours) != len(cases):
        print(f"subliminal template --jsonl answered {len(ours)} lines for {len(cases)} cases", file=sys.stderr)
        return 1
    per_template = {}
    mismatches = []
    for c, e, o in zip(cases, expected, ours):
        if "text" in e and "text" in o:
            ok = e["text"] == o["text"]
            kind = "identical" if ok else "different text"
        elif "error" in e and "error" in o:
            ok, kind = True, "both refuse"
        else:
            ok = False
            kind = "only ours refuses" if "error" in o else "only the reference refuses"
        t = per_template.setdefault(c["_file"], {"cases": 0, "identical": 0, "both_refuse": 0, "mismatch": []})
        t["cases"] += 1
        t["identical"] += kind == "identical"
        t["both_refuse"] += kind == "both refuse"
        if not ok:
            m = {"template": c["_file"], "conversation": c["_conversation"], "kind": kind,
                 "reference": e.get("text", e.get("error"))[:4000], "ours": o.get("text", o.get("error"))[:4000]}
            t["mismatch"].append(c["_conversation"] + ": " + kind)
            mismatches.append(m)
    matching = sorted(f for f, t in per_template.items() if not t["mismatch"])
    rendering = sorted(f for f, t in per_template.items() if not t["mismatch"] and t["identical"] > 0)
    report = {"reference": a.reference, "templates": len(files), "conversations": len(CONVERSATIONS), "cases": len(cases),
              "cases_identical": sum(t["identical"] for t in per_template.values()),
              "cases_both_refuse": sum(t["both_refuse"] for t in per_template.values()),
              "templates_matching": len(matching), "templates_matching_with_a_rendering": len(rendering),
              "min_templates": a.min_templates, "per_template": per_template, "mismatches": mismatches}
    if a.reference == "jinja2":
        import jinja2
        report["jinja2_version"] = jinja2.__version__
    else:
        import transformers, jinja2
        report["transformers_version"], report["jinja2_version"] = transformers.__version__, jinja2.__version__
    with open(a.out, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1, ensure_ascii=False)
    print(f"{len(files)} templates x {len(CONVERSATIONS)} conversations against {a.reference}: {report['cases_identical']} cases "
          f"byte-identical, {report['cases_both_refuse']} refused by both, {len(mismatches)} mismatched; "
          f"{len(rendering)} templates match on every conversation with at least one rendering ({len(matching)} with refusals counted)")
    for m in mismatches:
        print(f"  mismatch: {m['template']} / {m['conversation']}: {m['kind']}")
    return 0 if len(rendering) >= a.min_templates else 1


if __name__ == "__main__":
    sys.exit(main())
