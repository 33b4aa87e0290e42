//! A node's loop run in-process against a fake munin-node on a clock the test moves:
//! ten minutes of schedule in well under a second, with no process started and no sleep.
//! [`Rig::run_until`] runs the shipped driving loop ([`turn_until_stop`]) on the fake
//! clock, whose waits move it on while nothing is under way; a stop or a reload is sent
//! into the loop's channel as the signal handler's thread sends it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use clap::Parser;

use crate::asyncd::cli::{AsyncdOpts, DaemonConfig};
use crate::asyncd::commit::{Commit, Committer};
use crate::asyncd::coordinator::Coordinator;
use crate::asyncd::daemon::{drive, turn_until_stop};
use crate::asyncd::env::{Clock, Env, Fake};
use crate::asyncd::msg::{Event, Input, Reply};
use crate::asyncd::node::UNENDED_WAIT;
use crate::asyncd::node_spool::open_spool;
use crate::asyncd::workers::Workers;
use crate::spool::crash_tests::{accepted, served};
use crate::spool::meta::SpoolMeta;

use crate::asyncd::tests::fake_node::{
    greeting, speak, Act, Dialect, FakeNode, DEBIAN, MUNIN_NODE_C,
};

/// A whole hour: slots of every rate line up on it.
const T0: u64 = 1_800_000_000;

/// What a test does to its fake munin-node while it runs.
#[derive(Default)]
struct Control {
    /// The plugins served (read at each `list`).
    plugins: Mutex<Vec<String>>,
    /// Moved on to close every open connection at its next request (as munin-node ends a
    /// session after its global_timeout, or restarts).
    generation: AtomicU64,
    /// The test's clock: `slowconfig`'s config moves it on by two seconds.
    clock: Mutex<Option<Arc<Fake>>>,
    /// munin-node's global_timeout on the test's clock: a session that old is closed at
    /// its next request, and a plugin asked in its last 5 s is `# Timed out` at once, as
    /// munin-node does.
    session: Mutex<Option<Duration>>,
    /// Connections whose requests met their session's end or its last 5 s.
    ended: AtomicUsize,
    /// How it answers ([`DEBIAN`] unless set).
    dialect: Mutex<Option<Dialect>>,
}

impl Control {
    fn serving(plugins: &[&str]) -> Arc<Control> {
        let c = Control::default();
        *c.plugins.lock().unwrap() = plugins.iter().map(|p| p.to_string()).collect();
        Arc::new(c)
    }
}

/// A munin-node on 127.0.0.1 serving what `control` says, in Debian's munin-node's
/// dialect or the one `control` says ([`speak`]): `fast` declares `update_rate 60`, the others none; `hang`
/// takes 1.5 s (real time) to answer its config, `slowconfig` 2 s of the test's clock.
fn fake_munin_node(control: Arc<Control>) -> FakeNode {
    FakeNode::start(move |conn: &mut Session, line| answer(&control, conn, line))
}

/// What one connection to the fake munin-node knows of itself.
#[derive(Default)]
struct Session {
    /// The generation it was opened in, and when on the test's clock.
    born: u64,
    opened: Option<std::time::Instant>,
    /// Its requests met its session's end or its last 5 s.
    met_end: bool,
}

/// Answers one line of a connection.
fn answer(control: &Control, conn: &mut Session, line: &str) -> Vec<Act> {
    let clock = control.clock.lock().unwrap().clone();
    if line.is_empty() {
        conn.born = control.generation.load(Ordering::SeqCst);
        conn.opened = clock.as_ref().map(|c| c.instant());
        return vec![Act::Send(greeting("fake.example"))];
    }
    if control.generation.load(Ordering::SeqCst) != conn.born {
        return vec![Act::Close];
    }
    let session = *control.session.lock().unwrap();
    let left = match (session, &clock, conn.opened) {
        (Some(limit), Some(clock), Some(opened)) => {
            limit.checked_sub(clock.instant().saturating_duration_since(opened))
        }
        _ => None,
    };
    if session.is_some() && left.is_none_or(|l| l <= Duration::from_secs(5)) {
        if !conn.met_end {
            conn.met_end = true;
            control.ended.fetch_add(1, Ordering::SeqCst);
        }
        if left.is_none_or(|l| l.is_zero()) {
            return vec![Act::Close];
        }
        if line.starts_with("config") || line.starts_with("fetch") {
            return vec![Act::Send(b"# Timed out\n.\n".to_vec())];
        }
    }
    let plugins = control.plugins.lock().unwrap().clone();
    let mut text = |name: &[u8], fetch: bool, out: &mut Vec<u8>| {
        let Some(p) = plugins.iter().find(|p| p.as_bytes() == name) else {
            return false;
        };
        if fetch {
            out.extend_from_slice(b"x.value 1\n");
            return true;
        }
        match p.as_str() {
            // A hung plugin, as far as a test on the fake clock can tell.
            "hang" => thread::sleep(Duration::from_millis(1500)),
            "slowconfig" => {
                if let Some(clock) = &clock {
                    clock.advance(Duration::from_secs(2));
                }
            }
            _ => {}
        }
        let rate = if p == "fast" { "update_rate 60\n" } else { "" };
        out.extend_from_slice(format!("graph_title {p}\n{rate}x.label x\n").as_bytes());
        true
    };
    let mut out = Vec::new();
    let dialect = control.dialect.lock().unwrap().unwrap_or(DEBIAN);
    if !speak(
        &dialect,
        line.as_bytes(),
        "fake.example",
        &plugins.join(" "),
        &mut text,
        &mut out,
    ) {
        return vec![Act::Close];
    }
    vec![Act::Send(out)]
}

fn config(port: u16, dir: &std::path::Path) -> DaemonConfig {
    let host = format!("127.0.0.1:{port}");
    let args = ["munin-asyncd", "--host", &host, "--spooldir"];
    AsyncdOpts::try_parse_from(args.into_iter().chain(dir.to_str()))
        .unwrap()
        .into_configs()
        .unwrap()
        .remove(0)
}

/// A test's world: a fake munin-node, a spool directory, the daemon's configuration, a
/// fake clock, the workers, and the channel a node's loop hears on. A test may change the
/// configuration and the timings before it makes the node.
struct Rig {
    control: Arc<Control>,
    munin_node: FakeNode,
    dir: tempfile::TempDir,
    cfg: DaemonConfig,
    fake: Arc<Fake>,
    env: Env,
    workers: Workers,
    tx: Sender<Input>,
    rx: Receiver<Input>,
}

impl Rig {
    /// A fake munin-node serving `plugins`, and a clock at `start`.
    fn new(plugins: &[&str], start: u64) -> Rig {
        let control = Control::serving(plugins);
        let munin_node = fake_munin_node(control.clone());
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(munin_node.port(), dir.path());
        let (fake, env) = Fake::new(start);
        *control.clock.lock().unwrap() = Some(fake.clone());
        let (tx, rx) = channel();
        Rig {
            control,
            munin_node,
            dir,
            cfg,
            fake,
            env,
            workers: Workers::new(4),
            tx,
            rx,
        }
    }

    /// The node's loop on its spool, with the group commit (`--durability record`'s) or
    /// without.
    fn node(&self, group_commit: bool) -> Coordinator<'_> {
        let cfg = &self.cfg;
        let at = (cfg.interval, self.env.unix());
        let root = open_spool(self.dir.path(), "", at, cfg.durability).unwrap();
        let commit = match group_commit {
            true => Commit::Group(Committer::start().expect("the commit thread")),
            false => Commit::ByWriter,
        };
        let reply = Reply {
            node: 0,
            tx: self.tx.clone(),
        };
        Coordinator::new(cfg, root, &self.workers, self.env.clone(), reply, commit)
    }

    fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Takes in one event of the node's (the test turns it by hand).
    fn next_event(&self, within: Duration) -> Option<Event> {
        match self.rx.recv_timeout(within) {
            Ok(Input::Node(_, event)) => Some(event),
            Ok(_) => panic!("a stop or reload the test did not send"),
            Err(_) => None,
        }
    }

    /// Turns `node` as the driving loop does, moving the clock to each next wake, until a
    /// poll holds a connection.
    fn until_polling(&self, node: &mut Coordinator) {
        for _ in 0..100 {
            let next = node.turn();
            if node.polling() > 0 {
                return;
            }
            match self.next_event(Duration::from_millis(50)) {
                Some(event) => node.handle(event),
                None => self.fake.advance_to(next),
            }
        }
        panic!("no poll went out in 100 turns");
    }

    /// Takes in what comes back and turns `node`, the clock standing still, until nothing
    /// is under way or waiting.
    fn until_settled(&self, node: &mut Coordinator) {
        while node.busy() {
            let event = self
                .next_event(Duration::from_secs(10))
                .expect("a poll or write came back within 10 s");
            node.handle(event);
            node.turn();
        }
    }

    /// Runs the shipped driving loop on `node` until the clock has reached `end` and what
    /// was due then is done (the fake clock's waits move it on while nothing is under
    /// way). Says the seconds it woke at.
    fn run_until(&self, node: &mut Coordinator, end: u64) -> Vec<u64> {
        self.fake.end_at(end);
        let stopped = turn_until_stop(std::slice::from_mut(node), &self.rx, &self.env, None, || {});
        assert!(!stopped, "the loop heard a stop the test did not send");
        self.fake.take_woke()
    }

    /// Sends the loop a stop, as the signal handler's thread does, and runs the shipped
    /// loop (which hears it, and winds the node down).
    fn stop(&self, node: Coordinator) {
        self.tx.send(Input::Stop).unwrap();
        drive(&mut [node], &self.rx, &self.env, None, || {});
    }
}

/// The times of `service`'s records in the spool.
fn times(dir: &std::path::Path, service: &str) -> Vec<u64> {
    let mut t: Vec<u64> = accepted(dir)
        .unwrap()
        .into_iter()
        .filter(|(s, _, _)| s == service)
        .map(|(_, t, _)| t)
        .collect();
    t.sort_unstable();
    t
}

/// The body of the health sample at `time`, which must be the one.
fn health_at(dir: &std::path::Path, time: u64) -> String {
    let health: Vec<_> = accepted(dir)
        .unwrap()
        .into_iter()
        .filter(|(s, t, _)| s == "munin_asyncd" && *t == time)
        .collect();
    assert_eq!(health.len(), 1, "health samples at {time}");
    String::from_utf8_lossy(&health[0].2).to_string()
}

fn meta(dir: &std::path::Path) -> Vec<u8> {
    std::fs::read(dir.join("SPOOL-META")).unwrap()
}

fn complete_until(dir: &std::path::Path) -> u64 {
    SpoolMeta::parse(&meta(dir)).complete_until().unwrap()
}

#[test]
fn ten_minutes_of_a_nodes_loop_on_a_fake_clock() {
    let rig = Rig::new(&["fast", "slow"], T0 + 5);
    let (dir, fake, env) = (rig.dir(), &rig.fake, &rig.env);
    let mut node = rig.node(true);

    // Until past the last slot: the next wake after it is the cleanup at 605.
    let woke = rig.run_until(&mut node, T0 + 601);

    // Each plugin at once, then on its own slots: every minute, every five minutes.
    let fast: Vec<u64> = [T0 + 5]
        .into_iter()
        .chain((1..=10).map(|m| T0 + 60 * m))
        .collect();
    assert_eq!(times(dir, "fast"), fast);
    assert_eq!(times(dir, "slow"), [T0 + 5, T0 + 300, T0 + 600]);
    // The daemon's health, 10 s after the start (the first round is in), then on its
    // slots.
    assert_eq!(times(dir, "munin_asyncd"), [T0 + 15, T0 + 300, T0 + 600]);
    // It woke for nothing but the slots, the first health sample (15), the cleanup ten
    // minutes after the start (605), and SPOOL-META held back a second after the start
    // (written at most once a second). A round's samples are written with the
    // complete_until that follows the round, not once a second while they come in.
    let want: Vec<u64> = [6, 15, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 605]
        .iter()
        .map(|s| T0 + s)
        .collect();
    assert_eq!(woke, want);
    // Every sample is served, and the promise reaches to just before the next slot.
    let served = served(dir).unwrap();
    assert_eq!(
        served.iter().filter(|(g, _)| g == "fast").count(),
        fast.len()
    );
    assert_eq!(complete_until(dir), T0 + 659);

    // Idle: turned again and again until just before the next slot, it writes nothing.
    let before = meta(dir);
    let next = node.turn();
    fake.advance_to(next - Duration::from_millis(1));
    for _ in 0..5 {
        assert_eq!(node.turn(), next, "the next wake stays the slot");
    }
    assert_eq!(meta(dir), before, "an idle node rewrote SPOOL-META");
    assert!(!node.busy());

    // A plugin added and a reload: polled as soon as the list is read, yet after
    // everything promised already; systemd hears the reload begin and end.
    rig.control
        .plugins
        .lock()
        .unwrap()
        .push("added".to_string());
    let promised = complete_until(dir);
    rig.tx.send(Input::Reload).unwrap();
    rig.run_until(&mut node, T0 + 720);
    let added = times(dir, "added");
    assert_eq!(added.first(), Some(&(promised + 1)), "{added:?}");
    let told = fake.told.lock().unwrap().join("|");
    assert!(
        told.contains("RELOADING=1") && told.contains("READY=1"),
        "{told}"
    );

    // A stop: the loop publishes what is complete, up to now and not beyond.
    let now = env.unix();
    rig.stop(node);
    assert_eq!(complete_until(dir), now);
    assert!(fake.told.lock().unwrap().iter().any(|s| s == "STOPPING=1"));
}

#[test]
fn a_poll_handed_out_as_the_stop_comes_is_not_taken() {
    let rig = Rig::new(&["slow"], T0);
    let dir = rig.dir();
    let mut node = rig.node(true);
    // The list is read; then the stop comes (the driving thread has heard it: see
    // `turn_until_stop`) before the poll starts.
    node.turn();
    let listed = rig.next_event(Duration::from_secs(10)).unwrap();
    rig.env.stop();
    node.handle(listed);
    node.turn();
    rig.stop(node);
    assert!(times(dir, "slow").is_empty());
    assert_eq!(complete_until(dir), T0);
}

#[test]
fn munin_node_closing_kept_connections_or_going_away_costs_only_the_polls_while_it_is_away() {
    let rig = Rig::new(&["fast", "slow"], T0 + 5);
    let (dir, control, munin_node) = (rig.dir(), &rig.control, &rig.munin_node);
    let mut node = rig.node(false);
    rig.run_until(&mut node, T0 + 120);
    assert_eq!(times(dir, "fast"), [T0 + 5, T0 + 60, T0 + 120]);

    // munin-node ends every session (its global_timeout, 15 minutes by default): the
    // connections kept idle are closed, and the next poll still gets its sample.
    control.generation.fetch_add(1, Ordering::SeqCst);
    rig.run_until(&mut node, T0 + 180);
    assert_eq!(times(dir, "fast").last(), Some(&(T0 + 180)));

    // munin-node away for two slots (240, 300): those polls fail, nothing else does, and
    // the promise does not wait for them.
    munin_node.set_down(true);
    rig.run_until(&mut node, T0 + 300);
    assert_eq!(times(dir, "fast").last(), Some(&(T0 + 180)));
    assert_eq!(times(dir, "slow"), [T0 + 5]);
    assert!(complete_until(dir) >= T0 + 300);
    // The health sample at 300 counts the poll munin-node did not answer before it.
    let body = health_at(dir, T0 + 300);
    assert!(body.contains("node.value 1\n"), "{body}");
    assert!(body.contains("written.value 5"), "{body}");

    // Back: polled on the next slots, the first on a new connection.
    munin_node.set_down(false);
    rig.run_until(&mut node, T0 + 420);
    let fast: Vec<u64> = [5, 60, 120, 180, 360, 420].iter().map(|s| T0 + s).collect();
    assert_eq!(times(dir, "fast"), fast);
    assert_eq!(times(dir, "slow"), [T0 + 5]);
    let served = served(dir).unwrap();
    assert_eq!(served.iter().filter(|(g, _)| g == "fast").count(), 6);
}

#[test]
fn munin_node_c_is_polled_as_munin_node_and_a_plugin_it_lost_costs_one_wait() {
    // `cap ` with no capability, `list` ending with a space, blank lines, and a plugin it
    // no longer has answered with one `#` line and no `.`.
    let rig = Rig::new(&["fast", "slow"], T0 + 5);
    *rig.control.dialect.lock().unwrap() = Some(MUNIN_NODE_C);
    let (dir, control) = (rig.dir(), &rig.control);
    let mut node = rig.node(false);
    rig.run_until(&mut node, T0 + 120);
    assert_eq!(times(dir, "fast"), [T0 + 5, T0 + 60, T0 + 120]);
    // Removed from the node: its next poll, at 180, meets the answer without its `.`.
    control.plugins.lock().unwrap().retain(|p| p != "fast");
    let before = std::time::Instant::now();
    rig.run_until(&mut node, T0 + 300);
    let took = before.elapsed();
    assert!(
        took >= UNENDED_WAIT && took < UNENDED_WAIT * 5,
        "the lost plugin's poll cost {took:?}"
    );
    assert_eq!(times(dir, "fast"), [T0 + 5, T0 + 60, T0 + 120]);
    assert_eq!(times(dir, "slow"), [T0 + 5, T0 + 300]);
    // Listed again after that poll, it is not polled any more: one reply without `.`.
    let body = health_at(dir, T0 + 300);
    assert!(body.contains("unended.value 1\n"), "{body}");
    assert!(body.contains("plugin.value 1\n"), "{body}");
    rig.stop(node);
}

#[test]
fn wall_clock_steps_spool_nothing_out_of_order_and_leave_no_slot_waited_for() {
    let rig = Rig::new(&["fast", "slow"], T0 + 5);
    let (dir, fake) = (rig.dir(), &rig.fake);
    let mut node = rig.node(false);
    rig.run_until(&mut node, T0 + 120);
    assert_eq!(times(dir, "fast"), [T0 + 5, T0 + 60, T0 + 120]);
    let promised = complete_until(dir);

    // Back 100 s (the clock reads T0 + 20 again): nothing is spooled at or before what
    // is; `fast` is polled again on its slots once the clock reaches them.
    fake.step_wall(-100);
    rig.run_until(&mut node, T0 + 240);
    assert_eq!(
        times(dir, "fast"),
        [T0 + 5, T0 + 60, T0 + 120, T0 + 180, T0 + 240]
    );
    assert_eq!(times(dir, "slow"), [T0 + 5]);
    assert!(complete_until(dir) >= promised);

    // Forward an hour: seen at the next wake (here at once), where every overdue plugin
    // is polled, then on its slots again.
    fake.step_wall(3600);
    rig.run_until(&mut node, T0 + 3600 + 360);
    let fast = times(dir, "fast");
    assert_eq!(fast[5..], [T0 + 3840, T0 + 3900, T0 + 3960]);
    assert_eq!(times(dir, "slow"), [T0 + 5, T0 + 3840, T0 + 3900]);
    // The health sample taken then counts both steps.
    let body = health_at(dir, T0 + 3840);
    assert!(body.contains("steps.value 2\n"), "{body}");

    // Back again and stopped: the promise at the stop keeps the newest sample.
    fake.step_wall(-7200);
    rig.stop(node);
    assert!(complete_until(dir) >= T0 + 3960, "{}", complete_until(dir));
    // A start with the clock still behind takes nothing before it either.
    let mut node = rig.node(false);
    rig.run_until(&mut node, T0 + 3960 - 7200 + 120);
    assert_eq!(times(dir, "fast").last(), Some(&(T0 + 3960)));
    rig.stop(node);
}

#[test]
fn a_hung_plugin_holds_its_connection_only_for_the_stuck_time_it_is_given() {
    let mut rig = Rig::new(&["hang", "fast"], T0);
    rig.cfg.connections = 1;
    rig.env.timings.stuck = Duration::from_secs(20);
    let (dir, fake, env) = (rig.dir(), &rig.fake, &rig.env);
    let mut node = rig.node(false);
    // The list, then one connection: `hang` (first in the list) takes it, `fast` waits.
    // Polled once the list is in and nothing promised can be preceded (the second after
    // the start).
    rig.until_polling(&mut node);
    assert_eq!(node.polling(), 1);
    let start = env.unix();
    // Past the default 3 s, not past the 20 s given.
    fake.advance(Duration::from_secs(5));
    node.turn();
    assert_eq!(node.polling(), 1, "more connections before the stuck time");
    fake.advance(Duration::from_secs(16));
    node.turn();
    assert_eq!(node.polling(), 2, "no more connection after the stuck time");
    // Both land: `fast` beside the hung one, not after it.
    while node.in_flight() > 0 {
        let event = rig.next_event(Duration::from_secs(10)).unwrap();
        node.handle(event);
    }
    assert_eq!(times(dir, "fast"), [start + 21]);
    assert_eq!(times(dir, "hang").len(), 1);
}

#[test]
fn a_sample_is_stamped_when_its_fetch_starts_whether_asked_alone_or_with_its_config() {
    // `slowconfig`'s config takes 2 s: its fetch starts 2 s after the request went out.
    let rig = Rig::new(&["slowconfig"], T0);
    let mut node = rig.node(false);
    rig.run_until(&mut node, T0 + 300);
    // The first poll asks config, then fetch; the second, on its slot, asks both in one
    // write. Both are stamped when the fetch started, two seconds after the request.
    assert_eq!(times(rig.dir(), "slowconfig"), [T0 + 2, T0 + 302]);
}

/// Waits (up to 5 s) until the fake munin-node has `n` connections open; says how many.
fn open_connections(munin_node: &FakeNode, n: usize) -> usize {
    for _ in 0..500 {
        if munin_node.open() == n {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    munin_node.open()
}

#[test]
fn connections_are_kept_between_rounds_only_when_they_will_still_be_used() {
    // Plugins at 300 s: a connection kept would be past its 5 minutes at the next round,
    // and each holds a munin-node process meanwhile. Closed once the round is in.
    let rig = Rig::new(&["slow", "slower"], T0);
    let mut node = rig.node(false);
    rig.run_until(&mut node, T0 + 1);
    assert_eq!(times(rig.dir(), "slow").len(), 1);
    assert_eq!(open_connections(&rig.munin_node, 0), 0);
    // Plugins at 60 s: kept, and used at the next round.
    let rig = Rig::new(&["fast"], T0);
    let mut node = rig.node(false);
    rig.run_until(&mut node, T0 + 1);
    assert_eq!(open_connections(&rig.munin_node, 1), 1);
    rig.run_until(&mut node, T0 + 60);
    assert_eq!(times(rig.dir(), "fast").len(), 2);
    assert_eq!(
        open_connections(&rig.munin_node, 1),
        1,
        "the same connection reused"
    );
}

#[test]
fn a_poll_hung_past_the_stuck_time_beside_a_fresh_one_does_not_make_the_loop_spin() {
    // Two connections: `hang` (1.5 s of real time) and `a` go out; `b` and `c` wait.
    let mut rig = Rig::new(&["hang", "a", "b", "c"], T0);
    rig.cfg.connections = 2;
    let (fake, env) = (&rig.fake, &rig.env);
    let mut node = rig.node(false);
    for _ in 0..100 {
        let next = node.turn();
        if node.polling() == 2 {
            break;
        }
        match rig.next_event(Duration::from_millis(50)) {
            Some(event) => node.handle(event),
            None => fake.advance_to(next),
        }
    }
    assert_eq!(node.polling(), 2);
    // `a` comes back; two seconds on, `b` takes its connection.
    while let Some(event) = rig.next_event(Duration::from_millis(300)) {
        node.handle(event);
    }
    assert_eq!(node.polling(), 1, "hang alone under way");
    fake.advance(Duration::from_secs(2));
    node.turn();
    assert_eq!(node.polling(), 2, "b under way");
    // SPOOL-META writes land; `b`'s report is kept back, so `b` stays under way.
    let mut kept = Vec::new();
    while let Some(event) = rig.next_event(Duration::from_millis(300)) {
        match event {
            Event::Done(_) => kept.push(event),
            other => node.handle(other),
        }
    }
    assert_eq!(kept.len(), 1, "b's report");
    // Two more seconds: `hang` has run past the stuck time (3 s), `b` has not, `c`
    // waits. Nothing can change before `b` has run 3 s too (or something comes back):
    // the loop must not be asked to turn the node again at once.
    fake.advance(Duration::from_secs(2));
    let next = node.turn();
    assert!(
        next > env.now(),
        "the next turn is due {:?} ago",
        env.now() - next
    );
    assert_eq!(next, env.now() + Duration::from_millis(1010));
}

#[test]
fn a_global_timeout_shorter_than_a_connections_life_costs_one_retry_an_hour() {
    // munin-node ends each session after 122 s (its global_timeout); plugins at 60 s. The
    // connection of the first poll is in its session's last 5 s at the third (120 s): the
    // plugin is `# Timed out` at once, the poll is asked again on a new connection, and
    // from then on a connection is used for 60 s at most.
    let rig = Rig::new(&["fast"], T0);
    *rig.control.session.lock().unwrap() = Some(Duration::from_secs(122));
    let mut node = rig.node(false);
    rig.run_until(&mut node, T0 + 3000);
    let slots: Vec<u64> = (0..=50).map(|m| T0 + 60 * m).collect();
    assert_eq!(times(rig.dir(), "fast"), slots);
    assert_eq!(rig.control.ended.load(Ordering::SeqCst), 1);
    // The hourly reading of the list forgets it (a restart shortens the life alike): met
    // once more, and learnt again.
    rig.run_until(&mut node, T0 + 4200);
    let slots: Vec<u64> = (0..=70).map(|m| T0 + 60 * m).collect();
    assert_eq!(times(rig.dir(), "fast"), slots);
    assert_eq!(rig.control.ended.load(Ordering::SeqCst), 2);
}

#[test]
fn the_health_sample_waits_for_its_nodes_round_and_nothing_after_it_is_promised_before() {
    // `hang` has no update_rate: it is polled every 300 s, as the health sample is taken.
    let rig = Rig::new(&["hang"], T0);
    let (dir, fake, env) = (rig.dir(), &rig.fake, &rig.env);
    let mut node = rig.node(true);
    for _ in 0..1000 {
        let next = node.turn();
        if env.unix() >= T0 + 300 && node.polling() > 0 {
            break;
        }
        if node.busy() {
            let event = rig.next_event(Duration::from_secs(10)).unwrap();
            node.handle(event);
        } else if next > env.now() {
            fake.advance_to(next);
        }
    }
    assert_eq!(env.unix(), T0 + 300);
    assert_eq!(node.polling(), 1, "the round at 300 is under way");
    assert_eq!(
        node.in_flight(),
        1,
        "the waiting health sample is not in flight: a stop would not wait for it"
    );
    // `hang` answers after 1.5 s: meanwhile the health sample due at 300 waits, and
    // nothing at or after it is promised.
    assert_eq!(times(dir, "munin_asyncd"), [T0 + 10]);
    assert!(complete_until(dir) < T0 + 300);
    rig.until_settled(&mut node);
    // Written once the round is in, with its own time.
    assert_eq!(times(dir, "hang"), [T0, T0 + 300]);
    assert_eq!(times(dir, "munin_asyncd"), [T0 + 10, T0 + 300]);
    rig.run_until(&mut node, T0 + 302);
    assert!(complete_until(dir) >= T0 + 300, "{}", complete_until(dir));
}

#[test]
fn spool_meta_is_not_rewritten_each_second_while_polls_wait_for_a_connection() {
    let mut rig = Rig::new(&["hang", "fast"], T0);
    rig.cfg.connections = 1;
    rig.env.timings.stuck = Duration::from_secs(60);
    let (dir, fake, env) = (rig.dir(), &rig.fake, &rig.env);
    let mut node = rig.node(false);
    // `hang` takes the one connection for 1.5 s (real time); `fast` waits for it.
    rig.until_polling(&mut node);
    assert_eq!(node.polling(), 1);
    let start = env.unix();
    // A SPOOL-META write begun before the round lands.
    while let Some(event) = rig.next_event(Duration::from_millis(300)) {
        node.handle(event);
    }
    assert_eq!(node.polling(), 1);
    // Five seconds of the test's clock while `fast` waits: each would move complete_until
    // on by a second, and none is written.
    let mut published = 0;
    for _ in 0..5 {
        fake.advance(Duration::from_secs(1));
        node.turn();
        while let Some(event) = rig.next_event(Duration::from_millis(20)) {
            published += usize::from(matches!(event, Event::Published { .. }));
            node.handle(event);
        }
    }
    assert_eq!(published, 0, "SPOOL-META written while the round waits");
    assert!(complete_until(dir) < start);
    // Once the round is in, it is written at once.
    rig.until_settled(&mut node);
    assert_eq!(times(dir, "fast"), [start + 5]);
    assert!(complete_until(dir) >= start + 5, "{}", complete_until(dir));
}
