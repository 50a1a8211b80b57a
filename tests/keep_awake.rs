//! The processors kept awake during CPU steps (src/train/keep_awake.rs), in a process of its
//! own: another test's step in the same process would keep the spinners from parking.

use std::time::Duration;

use agml::train::keep_awake::while_stepping;

/// (thread name, scheduling policy) of each spinner that is running or runnable; a parked one
/// shows policy -1.
fn spinners() -> Vec<(String, i32)> {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    tasks
        .filter_map(|task| {
            let path = task.ok()?.path();
            let name = std::fs::read_to_string(path.join("comm")).ok()?;
            let name = name.trim().to_string();
            if !name.starts_with("agml-awake-") {
                return None;
            }
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            // After the parenthesised name: the state (field 3), ..., the policy (field 41).
            let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
            let policy = match fields[0] {
                "R" => fields[38].parse().ok()?,
                _ => -1,
            };
            Some((name, policy))
        })
        .collect()
}

#[test]
fn spinners_run_at_the_lowest_priority_during_a_step_and_park_after_it() {
    let awake = while_stepping();
    std::thread::sleep(Duration::from_millis(100));
    let during = spinners();
    assert_eq!(during.len(), rayon::current_num_threads(), "{during:?}");
    assert!(
        during.iter().all(|(_, policy)| *policy == libc::SCHED_IDLE),
        "spinning at SCHED_IDLE during a step: {during:?}"
    );
    drop(awake);
    std::thread::sleep(Duration::from_millis(100));
    let after = spinners();
    assert!(
        after.iter().all(|(_, policy)| *policy == -1),
        "parked after it: {after:?}"
    );
    // A second step wakes them again.
    let _awake = while_stepping();
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        spinners()
            .iter()
            .all(|(_, policy)| *policy == libc::SCHED_IDLE)
    );
}
