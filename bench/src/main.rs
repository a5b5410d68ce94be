fn main() {
    eprintln!("oversqlite-bench: not written yet");
    std::process::exit(2);
}
