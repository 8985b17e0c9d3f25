//! `crash-child <workload> <test dir> <round>`: runs one crash-test workload
//! ([`bulkhead_tests::crash::Workload`]) until it is killed. Started only by the tests.

use bulkhead_tests::crash::Workload;
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [workload, dir, round] = args.as_slice() else {
        eprintln!(
            "usage: crash-child <writer|rotation|master-rotation|deletion|churn|import|import-shared> <test dir> <round>"
        );
        std::process::exit(2);
    };
    let Some(workload) = Workload::from_name(workload) else {
        eprintln!("crash-child: unknown workload {workload:?}");
        std::process::exit(2);
    };
    let Ok(round) = round.parse() else {
        eprintln!("crash-child: the round must be a number");
        std::process::exit(2);
    };
    workload.run(&PathBuf::from(dir), round);
}
