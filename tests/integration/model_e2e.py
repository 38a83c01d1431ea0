#!/usr/bin/env python3
"""tests/integration/model_e2e.py: the live path against a reference model, per seed.

For each seed: a history of changes of an Athena-like force (ESX, ATX/2) and of a
Niche-like force (MER, NX5) from tests/integration/history.py (creates, updates,
deletes soon after creates and long after, stale and repeated messages, merges,
marking raises and lowers, handling C, MoPI changes, links added and removed, links to
records that come later or never, DELETE times earlier than the UPSERT before them);
a policy per direction drawn from the seed (kinds, classification ceiling, handling C,
MoPI groups, redactions). Two real polegated and two RMS stand-ins (`polegate
receive`) exchange them through the real broker, on topics of their own; the histories
go in bursts (one consumer batch) and in pieces that straddle batches, and one gateway
(by seed: the sender or the receiver) is killed with SIGKILL half-way and restarted.

With --policy-change, the sending gateways' policies (of one force or both, by seed)
change once or twice part-way (at pieces drawn from the seed, records of the policy
before possibly still spooled): the config file rewritten with another policy drawn
from the seed (a new policy.version; kinds, ceiling, handling C, MoPI groups, each
redaction flipped by a coin; a second change goes back to the first policy half the
time) and SIGHUP; the rest of the history follows once the daemon logs the new
version. The model is then history.expected_policies (docs/policy.md "Policy change").

Then each RMS must hold exactly what the model says (history.expected: the other
force's final state restricted to the policy, links following their ends, redactions
applied), record by record and link by link; the same histories through `polegate
translate` must give the model's final state without a policy. Prints per direction
`entities right / expected, links right / expected, extra`, and on failure the first
differences and the seed.

  model_e2e.py --build-dir build --seeds 1,2,3 --changes 150
  model_e2e.py --build-dir build --seeds 1,2,3 --changes 150 --policy-change
  model_e2e.py --build-dir build --seed-from 1000 --count 100000 --changes 120 --minutes 75
                                                                      (long run, docs/delivery.md)
"""

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import history  # noqa: E402
from e2e_atx import create_topic, run, tail  # noqa: E402
from two_force import Force  # noqa: E402


def policy_text(name, partner, t_out, t_in, pol, version=1):
    """The policy of one force: one destination (the partner) drawn per seed."""
    return ("policy:\n"
            "  version: %s-MB-%d\n"
            "  agreements:\n"
            "    - {name: ISA-MB, description: model-based test}\n"
            "    - {name: ISA-MB-C, description: handling-C conditions accepted}\n"
            "  destinations:\n%s"
            "  partners:\n"
            "    - {force: %s, topic: %s, agreement: ISA-MB}\n"
            % (name, version, history.policy_yaml(pol, partner.lower(), partner, t_out), partner,
               t_in))


def delete_topics(brokers, topics):
    """A run's topics go with it: a long run would otherwise leave thousands on the
    shared broker."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": brokers})
    for f in admin.delete_topics(topics, operation_timeout=30).values():
        try:
            f.result(timeout=60)
        except Exception:  # noqa: BLE001 (never created, or already gone)
            pass


def write_pieces(work, name, fmt, messages, rng):
    """The history as files to send: runs of 1 to 40 messages (NX5: one document a
    file, so a run is a list of files)."""
    out, i = [], 0
    while i < len(messages):
        n = rng.choice([1, 2, 5, 10, 40])
        chunk = messages[i:i + n]
        paths = []
        if fmt == "atx":
            p = os.path.join(work, "%s-%05d.ndjson" % (name, i))
            with open(p, "w", encoding="utf-8") as f:
                f.write("".join(m + "\n" for m in chunk))
            paths.append(p)
        else:
            for k, m in enumerate(chunk):
                p = os.path.join(work, "%s-%05d.xml" % (name, i + k))
                with open(p, "w", encoding="utf-8") as f:
                    f.write(m)
                paths.append(p)
        out.append(paths)
        i += n
    return out


def piece_size(fmt, paths):
    """How many messages of the history a piece holds."""
    if fmt != "atx":
        return len(paths)
    with open(paths[0], encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def change_policy(force, old_text, new_text, version, restart=None, timeout=60):
    """The force's policy rewritten in its config file and reloaded (SIGHUP), or, with
    restart (polegated), the daemon killed (SIGKILL) before and started after; returns
    once the daemon says it routes under the new version (the reconcile is done) or,
    restarted, listens (a message routed first reconciles first, docs/policy.md)."""
    with open(force.config, encoding="utf-8") as f:
        text = f.read()
    if old_text not in text:
        raise RuntimeError("%s: the policy to change is not in %s" % (force.name, force.config))
    if restart:
        force.kill()
    with open(force.config, "w", encoding="utf-8") as f:
        f.write(text.replace(old_text, new_text))
    if restart:
        force.start(restart)
        return
    force.daemon.send_signal(signal.SIGHUP)
    done = "policy %s (was " % version
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(force.log, encoding="utf-8", errors="replace") as f:
            log = f.read()
        if done in log:
            return
        for bad in ("reload refused", "not applied"):
            if bad in log:
                raise RuntimeError("%s: reload to %s failed: %s" % (force.name, version,
                                                                    tail(force.log, 5)))
        time.sleep(0.05)
    raise RuntimeError("%s: no reload to policy %s within %d s" % (force.name, version, timeout))


def send(polegate, force, paths):
    r = run([polegate, "send", "--to", "tcp://127.0.0.1:%d" % force.port, "--retries", "20"] + paths,
            timeout=300)
    if r.returncode != 0:
        raise RuntimeError("%s did not take %s: %s%s" % (force.name, os.path.basename(paths[0]),
                                                         r.stdout[-1500:], r.stderr[-1500:]))


def translate(polegate, work, name, src_fmt, dst_fmt, messages):
    """The history through `polegate translate` into the other format: an Rms of it."""
    paths = []
    if src_fmt == "atx":
        p = os.path.join(work, "%s-all.ndjson" % name)
        with open(p, "w", encoding="utf-8") as f:
            f.write("".join(m + "\n" for m in messages))
        paths.append(p)
    else:
        d = os.path.join(work, "%s-all" % name)
        os.makedirs(d)
        for i, m in enumerate(messages):
            p = os.path.join(d, "%06d.xml" % i)
            with open(p, "w", encoding="utf-8") as f:
                f.write(m)
            paths.append(p)
    r = subprocess.run([polegate, "translate", "--from", src_fmt, "--to", dst_fmt] + paths,
                       capture_output=True, timeout=300)
    notes = [l for l in r.stderr.decode("utf-8", "replace").splitlines()
             if "applied before" not in l and "stale" not in l]
    rms = history.Rms(dst_fmt)
    if dst_fmt == "atx":
        rms.apply(r.stdout.decode("utf-8"))
    else:
        for doc in history.split_nx5(r.stdout):
            rms.apply(doc)
    return rms, notes


def one_seed(args, seed, polegated, polegate):
    rng = random.Random(seed)
    t0 = time.monotonic()
    gen_e = history.Generator(seed, "ESX", "atx", args.changes)
    gen_m = history.Generator(seed, "MER", "nx5", args.changes)
    hist_e, hist_m = gen_e.generate(), gen_m.generate()
    pol_em, pol_me = history.random_policy(rng), history.random_policy(rng)  # ESX->MER, MER->ESX
    run_id = uuid.uuid4().hex[:10]
    t_em, t_me = "pg-mb-%s-esx-mer" % run_id, "pg-mb-%s-mer-esx" % run_id
    work = tempfile.mkdtemp(prefix="pg-model-e2e-%d-" % seed)
    esx = Force(work, "ESX", "athena", "atx", "MER", t_em, t_me, args.brokers, "pg-mb-%s-esx" % run_id,
                policy_text("ESX", "MER", t_em, t_me, pol_em))
    mer = Force(work, "MER", "niche", "nx5", "ESX", t_me, t_em, args.brokers, "pg-mb-%s-mer" % run_id,
                policy_text("MER", "ESX", t_me, t_em, pol_me))
    # --policy-change: one or two more policies per direction, drawn from the seed by a
    # generator of its own (the rest of the seed's run is as without it), which sending
    # gateways change to them, at pieces drawn from the seed, and how
    change = None
    if args.policy_change:
        prng = random.Random("%d/policy-change" % seed)
        n_changes = prng.choice([1, 1, 2])
        pols = {"ESX": [pol_em], "MER": [pol_me]}
        for _ in range(n_changes):
            for name in ("ESX", "MER"):
                was = pols[name][-1]
                # a second change goes back to the first policy (under a new version)
                # half the time: what the first withdrew must not come back at the
                # revision it was withdrawn at
                pols[name].append(pols[name][0] if len(pols[name]) > 1 and prng.random() < 0.5
                                  else history.changed_policy(prng, was))
        texts = {"ESX": [policy_text("ESX", "MER", t_em, t_me, q, v + 1)
                         for v, q in enumerate(pols["ESX"])],
                 "MER": [policy_text("MER", "ESX", t_me, t_em, q, v + 1)
                         for v, q in enumerate(pols["MER"])]}
        fracs = ([prng.uniform(0.55, 0.9)] if n_changes == 1 else
                 [prng.uniform(0.3, 0.6), prng.uniform(0.65, 0.95)])
        change = {"pols": pols, "texts": texts, "fracs": fracs,
                  "who": prng.choice([("ESX",), ("MER",), ("ESX", "MER")]),
                  "wait": prng.choice([0, 0, 0.3])}
        # a change by SIGHUP, or by a restart on the new file after a SIGKILL
        change["restart"] = prng.random() < 0.3
        for f in (esx, mer):  # a change may withdraw most of what a destination holds
            with open(f.config, encoding="utf-8") as fh:
                text = fh.read()
            with open(f.config, "w", encoding="utf-8") as fh:
                fh.write(text.replace("map_size: 256MiB}",
                                      "map_size: 256MiB, max_withdraw_percent: 100}"))
    failures = []
    lines = []
    try:
        for t in (t_em, t_me):
            create_topic(args.brokers, t)
        for f in (esx, mer):
            f.start_rms(polegate)
            f.start(polegated)
        pieces = [(esx, p) for p in write_pieces(work, "esx", "atx", hist_e, rng)]
        pm = [(mer, p) for p in write_pieces(work, "mer", "nx5", hist_m, rng)]
        # interleave the two forces' pieces, each in its own order
        merged = []
        while pieces or pm:
            src = pieces if (pieces and (not pm or rng.random() < 0.5)) else pm
            merged.append(src.pop(0))
        victim = esx if seed % 2 else mer
        kill_at = len(merged) // 2
        change_at = []
        if change:
            for fr in change["fracs"]:
                at = int(len(merged) * fr)
                change_at.append(min(at + (at == kill_at), len(merged)))
            change["cuts"] = {"ESX": [], "MER": []}
            sent = {"ESX": 0, "MER": 0}
        for k, (force, paths) in enumerate(merged + [(None, None)]):
            if k == kill_at and not args.no_kill:
                time.sleep(rng.choice([0, 0.05, 0.3]))
                victim.kill()
                victim.start(polegated)
            for j in [j + 1 for j, at in enumerate(change_at) if at == k]:
                # records of the old policy possibly still spooled
                time.sleep(change["wait"])
                for f in (esx, mer):
                    change["cuts"][f.name].append(sent[f.name])
                    if f.name in change["who"]:
                        change_policy(f, change["texts"][f.name][j - 1],
                                      change["texts"][f.name][j], "%s-MB-%d" % (f.name, j + 1),
                                      polegated if change["restart"] else None)
            if force is None:
                break
            if change:
                sent[force.name] += piece_size(force.fmt, paths)
            send(polegate, force, paths)
            if rng.random() < 0.3:
                time.sleep(rng.choice([0.05, 0.3]))  # a piece that lands in a batch of its own
        src_e = history.source_state("atx", gen_e.original)
        src_m = history.source_state("nx5", gen_m.original)
        want_mer, want_esx = history.expected(src_e, pol_em), history.expected(src_m, pol_me)
        if change:
            for name, gen in (("ESX", gen_e), ("MER", gen_m)):
                if name not in change["who"]:
                    continue
                cuts = [0] + change["cuts"][name] + [len(gen.messages)]
                segs = [([m for m, step in gen.messages[cuts[j]:cuts[j + 1]]
                          if step not in ("dup", "stale")], change["pols"][name][j])
                        for j in range(len(cuts) - 1)]
                want = history.expected_policies(gen.fmt, segs)
                # how much of it tells the changes from the last policy all along
                naive = history.expected(history.source_state(gen.fmt, gen.original),
                                         change["pols"][name][-1])
                differ = set(want[0]) ^ set(naive[0]) | {
                    i for i in want[0] if i in naive[0] and want[0][i] != naive[0][i]}
                lines.append("seed %d %s policy changed (%s) after %s of %d messages: %d "
                             "records held otherwise than under the last policy alone"
                             % (seed, name, "restart" if change["restart"] else "SIGHUP",
                                "+".join(map(str, change["cuts"][name])),
                                len(gen.messages), len(differ)))
                if name == "ESX":
                    want_mer = want
                else:
                    want_esx = want
        # wait until both RMSs hold what they must, or stop changing
        deadline = time.monotonic() + args.settle
        last, last_change = None, time.monotonic()
        while True:
            got_mer = history.read_rms_dir(mer.rms_dir, "nx5")
            got_esx = history.read_rms_dir(esx.rms_dir, "atx")
            fm, dm = history.compare(want_mer, got_mer)
            fe, de = history.compare(want_esx, got_esx)
            if not dm and not de:
                break
            state = (len(os.listdir(mer.rms_dir)), len(os.listdir(esx.rms_dir)))
            if state != last:
                last, last_change = state, time.monotonic()
            if time.monotonic() > deadline or time.monotonic() - last_change > args.quiet:
                break
            time.sleep(0.5)
        for what, fig, diffs in (("ESX -> MER", fm, dm), ("MER -> ESX", fe, de)):
            lines.append("seed %d %s: %s" % (seed, what, history.figure_text(fig)))
            if diffs:
                failures.append((what, diffs))
        # the same histories through polegate translate, without a policy
        for what, name, sf, df, gen, hist in (
                ("translate ESX -> nx5", "esx", "atx", "nx5", gen_e, hist_e),
                ("translate MER -> atx", "mer", "nx5", "atx", gen_m, hist_m)):
            src = history.source_state(sf, gen.original)
            rms, notes = translate(polegate, work, name, sf, df, hist)
            fig, diffs = history.compare(history.expected(src, None), rms)
            lines.append("seed %d %s: %s" % (seed, what, history.figure_text(fig)))
            if notes:
                diffs = ["translate: " + n for n in notes[:5]] + diffs
            if diffs:
                failures.append((what, diffs))
        fig_all = (fm, fe)
    except Exception as exc:  # noqa: BLE001
        import traceback
        failures.append(("error", ["%s: %s" % (type(exc).__name__, exc)] +
                         traceback.format_exc().splitlines()[-6:]))
        fig_all = None
    finally:
        for f in (esx, mer):
            rc = f.stop()
            if rc != 0:
                failures.append((f.name, ["polegated exited %s on SIGTERM" % rc]))
            f.stop_rms()
        delete_topics(args.brokers, [t_em, t_me])
    for l in lines:
        print(l)
    if failures:
        print("seed %d FAILED (policies ESX->MER %s, MER->ESX %s); work folder %s"
              % (seed, pol_em, pol_me, work))
        if change:
            print("  policies changed by %s (%s) at %s messages sent: ESX->MER %s, MER->ESX %s"
                  % ("+".join(change["who"]), "restart" if change["restart"] else "SIGHUP",
                     change.get("cuts"), change["pols"]["ESX"][1:],
                     change["pols"]["MER"][1:]))
        for what, diffs in failures:
            print("  %s: %d difference(s)" % (what, len(diffs)))
            for d in diffs[:args.show]:
                print("    " + d)
        for f in (esx, mer):
            print("--- %s polegated log (last lines):\n%s" % (f.name, tail(f.log, 15)))
    elif not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    changes = len(hist_e) + len(hist_m)
    return not failures, changes, fig_all, time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--brokers", default="127.0.0.1:19092")
    ap.add_argument("--seeds", default="1,2,3", help="comma-separated seeds")
    ap.add_argument("--seed-from", type=int, help="with --count: seeds N, N+1, ...")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--changes", type=int, default=150, help="messages per force and seed")
    ap.add_argument("--settle", type=float, default=120, help="longest wait for the RMSs, s")
    ap.add_argument("--quiet", type=float, default=20,
                    help="give up waiting after this long without a new RMS message, s")
    ap.add_argument("--show", type=int, default=12, help="differences printed per direction")
    ap.add_argument("--no-kill", action="store_true")
    ap.add_argument("--policy-change", action="store_true",
                    help="change the sending gateways' policies (SIGHUP) part-way, per seed")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--stop-on-failure", action="store_true")
    ap.add_argument("--minutes", type=float, default=0,
                    help="start no seed after this many minutes (0: run every seed)")
    args = ap.parse_args()
    polegated = os.path.join(args.build_dir, "gateway", "polegated")
    polegate = os.path.join(args.build_dir, "cli", "polegate")
    seeds = (list(range(args.seed_from, args.seed_from + args.count)) if args.seed_from is not None
             else [int(s) for s in args.seeds.split(",")])
    t0 = time.monotonic()
    ok_n, changes, tot = 0, 0, [0, 0, 0, 0, 0]
    failed = []
    for seed in seeds:
        if args.minutes and time.monotonic() - t0 > args.minutes * 60:
            break
        ok, n, figs, dt = one_seed(args, seed, polegated, polegate)
        changes += n
        if figs:
            for f in figs:
                tot[0] += f["entities_right"]
                tot[1] += f["entities"]
                tot[2] += f["links_right"]
                tot[3] += f["links"]
                tot[4] += f["extra"]
        if ok:
            ok_n += 1
        else:
            failed.append(seed)
            if args.stop_on_failure:
                break
    n = ok_n + len(failed)
    print("model_e2e: %d of %d seeds right (%d histories, %d changes) in %.0f s; live path: "
          "entities %d / %d right, links %d / %d right, extra %d%s"
          % (ok_n, n, 2 * n, changes, time.monotonic() - t0, tot[0], tot[1], tot[2], tot[3],
             tot[4], "; failed seeds: %s" % ",".join(map(str, failed)) if failed else ""))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
