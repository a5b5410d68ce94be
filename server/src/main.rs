fn main() {
    eprintln!("oversqlite-server: not built yet");
    std::process::exit(2);
}
