//! `kubectl_complete-sts_safe`: the executable kubectl (1.26+) runs to complete
//! `kubectl sts-safe …` (see `sts_safe::complete`). Put it on PATH next to
//! `kubectl-sts_safe`.

fn main() {
    let words: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(sts_safe::complete::main(&words));
}
