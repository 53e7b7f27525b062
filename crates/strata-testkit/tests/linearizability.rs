//! The linearizability checker on hand-made histories with a known answer, and on random
//! histories of a simulated concurrent register (linearizable by construction, then
//! corrupted).

use strata_testkit::linearizability::{
    CasInput as I, CasOutput as O, CasRegister, History, Model, NotLinearizable, Op, check,
    check_with_budget, now_nanos,
};

type CasOp = Op<I, O>;

/// A completed op.
fn done(client: u64, call: u64, ret: u64, input: I, output: O) -> CasOp {
    Op {
        client,
        call,
        ret: Some(ret),
        input,
        output: Some(output),
    }
}

/// An op whose outcome is unknown; `ret` `None` when it may still land later.
fn unknown(client: u64, call: u64, ret: Option<u64>, input: I) -> CasOp {
    Op {
        client,
        call,
        ret,
        input,
        output: None,
    }
}

/// A compare-and-swap from version `expected` to `new`.
fn cas(expected: u64, new: u64) -> I {
    I::PutIfMatch { expected, new }
}

fn empty() -> CasRegister {
    CasRegister::default()
}

fn fails(history: &[CasOp]) -> NotLinearizable {
    match check(&empty(), history) {
        Ok(()) => panic!("accepted a non-linearizable history: {history:#?}"),
        Err(e) => e,
    }
}

fn passes(history: &[CasOp]) {
    if let Err(e) = check(&empty(), history) {
        panic!("rejected a linearizable history: {e}\n{history:#?}");
    }
}

#[test]
fn register_model_answers_like_s3() {
    let absent = CasRegister(None);
    let one = CasRegister(Some(1));
    assert_eq!(absent.apply(&I::Read), (O::Value(None), absent));
    assert_eq!(absent.apply(&I::Create(1)), (O::Ok, one));
    assert_eq!(one.apply(&I::Create(2)), (O::AlreadyExists, one));
    assert_eq!(one.apply(&cas(1, 2)), (O::Ok, CasRegister(Some(2))));
    let stale = cas(9, 2);
    assert_eq!(one.apply(&stale), (O::Conflict, one));
    assert_eq!(absent.apply(&stale), (O::Conflict, absent));
    assert_eq!(one.apply(&I::Delete), (O::Ok, absent));
    assert_eq!(absent.apply(&I::Delete), (O::Ok, absent));
    assert_eq!(
        one.apply(&I::DeleteIfMatch { expected: 1 }),
        (O::Ok, absent)
    );
    assert_eq!(
        one.apply(&I::DeleteIfMatch { expected: 2 }),
        (O::Conflict, one)
    );
    // As a model: a wrong answer is refused; an unknown one takes effect.
    assert_eq!(one.step(&I::Read, Some(&O::Value(Some(2)))), None);
    assert_eq!(absent.step(&I::Put(4), None), Some(CasRegister(Some(4))));
}

#[test]
fn linearizable_histories_pass() {
    // Sequential.
    passes(&[
        done(1, 0, 1, I::Create(1), O::Ok),
        done(1, 2, 3, I::Read, O::Value(Some(1))),
        done(1, 4, 5, cas(1, 2), O::Ok),
        done(1, 6, 7, I::Delete, O::Ok),
        done(1, 8, 9, I::Read, O::Value(None)),
    ]);
    // A read concurrent with a write may see either value, even in "reverse" order of
    // return times.
    passes(&[
        done(1, 0, 100, I::Put(1), O::Ok),
        done(2, 10, 20, I::Read, O::Value(Some(1))),
        done(3, 30, 40, I::Read, O::Value(Some(1))),
    ]);
    passes(&[
        done(1, 0, 100, I::Put(1), O::Ok),
        done(2, 10, 20, I::Read, O::Value(None)),
        done(3, 30, 40, I::Read, O::Value(Some(1))),
    ]);
    // Two CAS from the same version: one wins, the other conflicts.
    passes(&[
        done(1, 0, 1, I::Create(1), O::Ok),
        done(2, 10, 20, cas(1, 2), O::Conflict),
        done(3, 10, 20, cas(1, 3), O::Ok),
        done(2, 30, 40, I::Read, O::Value(Some(3))),
    ]);
    // Operations touching at one instant count as concurrent.
    passes(&[
        done(1, 0, 10, I::Put(1), O::Ok),
        done(2, 10, 20, I::Read, O::Value(None)),
    ]);
}

#[test]
fn a_stale_read_after_an_acknowledged_write_fails() {
    let history = [
        done(1, 0, 10, I::Put(1), O::Ok),
        done(1, 20, 30, I::Put(2), O::Ok),
        done(2, 40, 50, I::Read, O::Value(Some(1))),
    ];
    let err = fails(&history);
    assert_eq!(err.prefix, [0, 1]);
    assert_eq!(err.blocked, 2);
    assert_eq!(err.candidates, [2]);
    assert_eq!(err.state, "CasRegister(Some(2))");
    let message = err.to_string();
    assert!(
        message.contains("at most 2 of its 3 completed operations can be ordered"),
        "{message}"
    );
    assert!(
        message.contains("#2 client 2 [40..50] Read -> Value(Some(1))"),
        "{message}"
    );
}

#[test]
fn a_double_applied_compare_and_swap_fails() {
    // Both writers swapped from version 1: one of them must have been refused.
    let err = fails(&[
        done(1, 0, 1, I::Create(1), O::Ok),
        done(2, 10, 20, cas(1, 2), O::Ok),
        done(3, 10, 20, cas(1, 3), O::Ok),
    ]);
    assert_eq!(err.prefix.len(), 2);
    assert_eq!(err.candidates.len(), 1);
}

#[test]
fn a_false_conflict_fails() {
    // The writer was told Conflict, but its value is there.
    fails(&[
        done(1, 0, 1, I::Create(1), O::Ok),
        done(2, 10, 20, cas(1, 2), O::Conflict),
        done(3, 30, 40, I::Read, O::Value(Some(2))),
    ]);
}

#[test]
fn a_lost_acknowledged_write_fails() {
    fails(&[
        done(1, 0, 1, I::Create(1), O::Ok),
        done(2, 10, 20, cas(1, 2), O::Ok),
        done(3, 30, 40, I::Read, O::Value(Some(1))),
    ]);
    // A create acknowledged on an absent object, then gone without a delete.
    fails(&[
        done(1, 0, 1, I::Create(7), O::Ok),
        done(2, 5, 6, I::Read, O::Value(None)),
    ]);
}

#[test]
fn an_unknown_outcome_may_apply_late_or_never() {
    // A pending write that must have applied: a later read saw its value.
    passes(&[
        unknown(1, 0, None, I::Put(5)),
        done(2, 50, 60, I::Read, O::Value(Some(5))),
    ]);
    // ... or never did.
    passes(&[
        unknown(1, 0, None, I::Put(5)),
        done(2, 50, 60, I::Read, O::Value(None)),
    ]);
    // ... or landed after a read that missed it, and after the writer gave up at 10.
    passes(&[
        unknown(1, 0, None, I::Put(5)),
        done(1, 20, 30, I::Read, O::Value(None)),
        done(2, 50, 60, I::Read, O::Value(Some(5))),
    ]);
    // But not before it was called.
    fails(&[
        done(2, 0, 10, I::Read, O::Value(Some(5))),
        unknown(1, 20, None, I::Put(5)),
    ]);
    // And only once: seen, overwritten, never seen again.
    fails(&[
        unknown(1, 0, None, I::Put(5)),
        done(2, 10, 20, I::Read, O::Value(Some(5))),
        done(2, 30, 40, I::Put(6), O::Ok),
        done(2, 50, 60, I::Read, O::Value(Some(5))),
    ]);
}

#[test]
fn an_unknown_outcome_with_a_return_applies_before_it_or_never() {
    // Returned at 20 without an answer: it landed before 20 or never.
    let history = |late_read| {
        [
            unknown(1, 0, Some(20), I::Put(5)),
            done(2, 30, 40, I::Put(6), O::Ok),
            done(2, 50, 60, I::Read, O::Value(late_read)),
        ]
    };
    fails(&history(Some(5)));
    passes(&history(Some(6)));
    // The same with no return: it may have landed after the put of 6.
    let mut pending = history(Some(5));
    pending[0].ret = None;
    passes(&pending);
    // Applied before its return, seen by a concurrent read.
    passes(&[
        unknown(1, 0, Some(20), I::Put(5)),
        done(2, 10, 30, I::Read, O::Value(Some(5))),
        done(2, 40, 50, I::Read, O::Value(Some(5))),
    ]);
    // Never applied.
    passes(&[
        unknown(1, 0, Some(20), I::Put(5)),
        done(2, 40, 50, I::Read, O::Value(None)),
    ]);
}

#[test]
fn the_recorder_timestamps_calls_and_returns() {
    let history = History::new();
    let a = history.call(1, I::Create(1));
    history.ret(a, O::Ok);
    let b = history.call(2, I::Read);
    history.ret(b, O::Value(Some(1)));
    history.call(3, I::Delete);
    let ambiguous = history.call(4, I::Put(2));
    history.ret_unknown(ambiguous);
    let ops = history.ops();
    assert_eq!(ops.len(), 4);
    assert!(ops[3].ret.is_some_and(|ret| ret >= ops[3].call));
    assert_eq!(ops[3].output, None);
    assert!(ops[0].call <= ops[0].ret.unwrap());
    assert!(ops[0].ret.unwrap() <= ops[1].call);
    assert_eq!(ops[2].ret, None);
    assert_eq!(ops[2].output, None);
    assert!(check(&empty(), &ops).is_ok());
    // The read returned after the create, so seeing nothing is not allowed.
    let mut stale = ops.clone();
    stale[1].output = Some(O::Value(None));
    stale.truncate(2);
    assert!(check(&empty(), &stale).is_err());
}

/// CLOCK_MONOTONIC is shared with other processes: Python's `time.monotonic_ns` falls
/// between two of our readings.
#[test]
fn now_nanos_is_the_machine_wide_monotonic_clock() {
    let Some(python) = strata_testkit::python() else {
        return;
    };
    let before = now_nanos();
    let out = std::process::Command::new(python)
        .args(["-c", "import time; print(time.monotonic_ns())"])
        .output()
        .expect("python runs");
    let after = now_nanos();
    let theirs: u64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .expect("a number of nanoseconds");
    assert!(
        before <= theirs && theirs <= after,
        "{before} <= {theirs} <= {after}"
    );
}

/// A register shared by simulated clients, each with one operation at a time, applied
/// atomically at one instant between call and return (or, for an unknown outcome, maybe
/// never, maybe after the client gave up). Linearizable by construction.
/// `unknowns`: which unknown outcomes to produce, bit 1: ops whose client gave up before
/// they took effect (`ret` `None`: they land later or never), bit 2: ops that took effect
/// but returned without an answer (`ret` known).
fn simulate(seed: u64, ops: usize, clients: usize, unknowns: u8) -> Vec<CasOp> {
    #[derive(Clone, Copy)]
    enum Phase {
        Idle,
        Called(usize),
        Applied(usize),
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut register = CasRegister::default();
    let mut history: Vec<CasOp> = Vec::new();
    let mut phase = vec![Phase::Idle; clients];
    let mut last_seen = vec![None::<u64>; clients];
    // Unknown-outcome writes that may still land (index, landed?).
    let mut in_flight: Vec<usize> = Vec::new();
    let mut next_value = 1;
    let mut time = 0;
    let apply = |register: &mut CasRegister, op: &CasOp| {
        let (output, next) = register.apply(&op.input);
        *register = next;
        output
    };
    while history.len() < ops || phase.iter().any(|p| !matches!(p, Phase::Idle)) {
        time += 1;
        // Now and then a write whose client gave up lands.
        if !in_flight.is_empty() && rng.u8(..10) == 0 {
            let i = in_flight.swap_remove(rng.usize(..in_flight.len()));
            apply(&mut register, &history[i]);
        }
        let c = rng.usize(..clients);
        match phase[c] {
            Phase::Idle if history.len() < ops => {
                let value = next_value;
                next_value += 1;
                let input = match (rng.u8(..20), last_seen[c]) {
                    (0..=6, _) => I::Read,
                    (7..=8, _) => I::Put(value),
                    (9..=10, _) => I::Create(value),
                    (11..=16, Some(expected)) => I::PutIfMatch {
                        expected,
                        new: value,
                    },
                    (17, _) => I::Delete,
                    (18..=19, Some(expected)) => I::DeleteIfMatch { expected },
                    _ => I::Read,
                };
                history.push(Op {
                    client: c as u64,
                    call: time,
                    ret: None,
                    input,
                    output: None,
                });
                phase[c] = Phase::Called(history.len() - 1);
            }
            Phase::Idle => {}
            Phase::Called(i) => match rng.u8(..20) {
                // The client gives up before the request took effect: it lands later or never.
                0 if unknowns & 1 != 0 => {
                    if rng.bool() {
                        in_flight.push(i);
                    }
                    phase[c] = Phase::Idle;
                }
                _ => {
                    let output = apply(&mut register, &history[i]);
                    if let O::Value(seen) = output {
                        last_seen[c] = seen;
                    }
                    history[i].output = Some(output);
                    phase[c] = Phase::Applied(i);
                }
            },
            Phase::Applied(i) => {
                history[i].ret = Some(time);
                // Applied, but the client only knows it returned without an answer.
                if unknowns & 2 != 0 && rng.u8(..20) == 0 {
                    history[i].output = None;
                }
                phase[c] = Phase::Idle;
            }
        }
    }
    history
}

#[test]
fn random_linearizable_histories_pass() {
    for seed in 0..40 {
        let history = simulate(seed, 300, 1 + (seed as usize % 16), BOTH);
        if let Err(e) = check(&empty(), &history) {
            panic!("seed {seed}: {e}");
        }
    }
}

#[test]
fn two_thousand_operations_from_sixteen_clients() {
    for seed in [100, 101, 102] {
        let history = simulate(seed, 2000, 16, BOTH);
        let unknown = history.iter().filter(|op| op.output.is_none()).count();
        let pending = history.iter().filter(|op| op.ret.is_none()).count();
        assert!(
            unknown > 100 && pending > 25,
            "seed {seed}: {unknown} unknown, {pending} pending"
        );
        check(&empty(), &history).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let budget = (10..)
            .map(|k| 1u64 << k)
            .find(|&budget| check_with_budget(&empty(), &history, budget).is_ok())
            .expect("a budget that suffices");
        println!(
            "seed {seed}: {unknown} unknown outcomes ({pending} pending), linearizable within {budget} steps"
        );
    }
}

const GAVE_UP: u8 = 1;
const NO_ANSWER: u8 = 2;
const BOTH: u8 = GAVE_UP | NO_ANSWER;

/// Replaces a read near the end with one of a value nobody wrote.
fn corrupt(history: &mut [CasOp]) -> usize {
    let victim = (history.len() * 9 / 10..history.len())
        .find(|&i| history[i].input == I::Read && history[i].output.is_some())
        .expect("a read near the end");
    history[victim].output = Some(O::Value(Some(u64::MAX)));
    victim
}

/// A read of a value nobody wrote, late in a long history: the search must try every order
/// before it can say no.
#[test]
fn corrupted_long_histories_fail() {
    for seed in [200, 201, 202] {
        let mut history = simulate(seed, 2000, 16, NO_ANSWER);
        let victim = corrupt(&mut history);
        let err = fails(&history);
        assert!(!err.gave_up, "seed {seed}: {err}");
        assert!(err.candidates.contains(&victim), "seed {seed}: {err}");
        assert!(
            err.to_string().contains(&format!("#{victim} client ")),
            "seed {seed}: {err}"
        );
        println!("seed {seed}: no in {} steps", err.explored);
    }
}

/// Ops that may land at any later time multiply the orders to try: shorter histories.
#[test]
fn corrupted_histories_with_pending_ops_fail() {
    for seed in [200, 202, 203] {
        let mut history = simulate(seed, 400, 16, BOTH);
        assert!(history.iter().any(|op| op.ret.is_none()));
        let victim = corrupt(&mut history);
        let err = fails(&history);
        assert!(!err.gave_up, "seed {seed}: {err}");
        assert!(err.candidates.contains(&victim), "seed {seed}: {err}");
        println!("seed {seed}: no in {} steps", err.explored);
    }
}

/// Past its budget the search stops and says it gave up rather than claiming either answer.
#[test]
fn the_search_gives_up_at_its_budget() {
    let mut history = simulate(200, 2000, 16, BOTH);
    corrupt(&mut history);
    let err = check_with_budget(&empty(), &history, 20_000).unwrap_err();
    assert!(err.gave_up);
    assert_eq!(err.explored, 20_000);
    let message = err.to_string();
    assert!(
        message.starts_with("gave up after 20000 search steps without finding a valid order"),
        "{message}"
    );
    // Ten times that is plenty for the uncorrupted history.
    let history = simulate(200, 2000, 16, BOTH);
    assert!(check_with_budget(&empty(), &history, 200_000).is_ok());
}

/// A completed write turned into a conflict: its value is still read later, so the history
/// cannot be ordered (the false conflict of issue 15).
#[test]
fn a_false_conflict_deep_in_a_long_history_fails() {
    for seed in [300, 301, 302] {
        let mut history = simulate(seed, 2000, 16, NO_ANSWER);
        let written = |op: &CasOp| match op.input {
            I::PutIfMatch { new, .. } => Some(new),
            _ => None,
        };
        // A successful swap whose value a later completed read saw.
        let victim = (0..history.len())
            .rev()
            .find(|&i| {
                history[i].output == Some(O::Ok)
                    && written(&history[i]).is_some_and(|v| {
                        history.iter().any(|op| {
                            op.output == Some(O::Value(Some(v))) && op.call > history[i].call
                        })
                    })
            })
            .expect("a swap that was read");
        history[victim].output = Some(O::Conflict);
        let err = fails(&history);
        assert!(!err.gave_up, "seed {seed}: {err}");
    }
}

/// Every order and every choice of unknown outcomes, tried one by one: the definition of
/// linearizability, for histories small enough to enumerate.
fn brute_force(history: &[CasOp]) -> bool {
    fn orders(
        history: &[CasOp],
        chosen: &[usize],
        state: CasRegister,
        placed: &mut Vec<usize>,
    ) -> bool {
        if placed.len() == chosen.len() {
            return true;
        }
        for &i in chosen {
            if placed.contains(&i) {
                continue;
            }
            // Every chosen op that returned before `i` was called must already be placed.
            let waits = chosen.iter().any(|&j| {
                j != i
                    && !placed.contains(&j)
                    && history[j].ret.is_some_and(|ret| ret < history[i].call)
            });
            if waits {
                continue;
            }
            let op = &history[i];
            if let Some(next) = state.step(&op.input, op.output.as_ref()) {
                placed.push(i);
                if orders(history, chosen, next, placed) {
                    return true;
                }
                placed.pop();
            }
        }
        false
    }
    let unknown: Vec<usize> = (0..history.len())
        .filter(|&i| history[i].output.is_none())
        .collect();
    (0..1u32 << unknown.len()).any(|mask| {
        let chosen: Vec<usize> = (0..history.len())
            .filter(|&i| {
                history[i].output.is_some()
                    || unknown
                        .iter()
                        .position(|&u| u == i)
                        .is_some_and(|k| mask & (1 << k) != 0)
            })
            .collect();
        orders(history, &chosen, CasRegister::default(), &mut Vec::new())
    })
}

fn random_small_history(rng: &mut fastrand::Rng) -> Vec<CasOp> {
    let n = rng.usize(1..=6);
    let value = |rng: &mut fastrand::Rng| rng.u64(1..=3);
    (0..n)
        .map(|_| {
            let call = rng.u64(0..10);
            let input = match rng.u8(..6) {
                0 => I::Read,
                1 => I::Put(value(rng)),
                2 => I::Create(value(rng)),
                3 => I::PutIfMatch {
                    expected: value(rng),
                    new: value(rng),
                },
                4 => I::Delete,
                _ => I::DeleteIfMatch {
                    expected: value(rng),
                },
            };
            let output = match (rng.u8(..5), input) {
                (0, _) => None,
                (_, I::Read) => Some(O::Value(rng.bool().then(|| value(rng)))),
                (1, _) => Some(O::Conflict),
                (2, _) => Some(O::AlreadyExists),
                _ => Some(O::Ok),
            };
            let ret = match output {
                None if rng.bool() => None,
                _ => Some(call + rng.u64(0..6)),
            };
            Op {
                client: rng.u64(0..3),
                call,
                ret,
                input,
                output,
            }
        })
        .collect()
}

/// The search with all its shortcuts gives the definition's answer on random small
/// histories (values repeat here, so no shortcut may rely on unique values).
#[test]
fn agrees_with_brute_force_on_small_histories() {
    let mut rng = fastrand::Rng::with_seed(15);
    let (mut yes, mut no) = (0, 0);
    for round in 0..20_000 {
        let history = random_small_history(&mut rng);
        let expected = brute_force(&history);
        let got = check(&empty(), &history);
        assert_eq!(
            got.is_ok(),
            expected,
            "round {round}: checker says {got:?}, brute force says {expected}: {history:#?}"
        );
        if let Err(e) = got {
            assert!(!e.gave_up);
        }
        if expected { yes += 1 } else { no += 1 }
    }
    // Both answers are well represented.
    assert!(yes > 3000 && no > 3000, "{yes} linearizable, {no} not");
}

/// Simulated histories of 10 ops from 4 clients, values folded onto 1..=3 (so writes
/// collide) and, every other time, one answer changed: mostly linearizable, often not.
#[test]
fn agrees_with_brute_force_on_simulated_histories() {
    let fold = |v: u64| v % 3 + 1;
    let mut rng = fastrand::Rng::with_seed(16);
    let (mut yes, mut no) = (0, 0);
    for seed in 0..1500 {
        let mut history = simulate(seed, 10, 4, BOTH);
        for op in &mut history {
            op.input = match op.input {
                I::Put(v) => I::Put(fold(v)),
                I::Create(v) => I::Create(fold(v)),
                I::PutIfMatch { expected, new } => I::PutIfMatch {
                    expected: fold(expected),
                    new: fold(new),
                },
                I::DeleteIfMatch { expected } => I::DeleteIfMatch {
                    expected: fold(expected),
                },
                other => other,
            };
            if let Some(O::Value(Some(v))) = op.output {
                op.output = Some(O::Value(Some(fold(v))));
            }
        }
        if rng.bool() {
            let i = rng.usize(..history.len());
            history[i].output = match history[i].output {
                Some(O::Value(_)) => Some(O::Value(rng.bool().then(|| rng.u64(1..=3)))),
                Some(O::Ok) => Some(O::Conflict),
                Some(_) => Some(O::Ok),
                None => Some(O::Ok),
            };
        }
        let expected = brute_force(&history);
        let got = check(&empty(), &history);
        assert_eq!(
            got.is_ok(),
            expected,
            "seed {seed}: checker says {got:?}, brute force says {expected}: {history:#?}"
        );
        if expected { yes += 1 } else { no += 1 }
    }
    assert!(yes > 500 && no > 250, "{yes} linearizable, {no} not");
}
