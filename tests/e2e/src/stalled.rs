//! A server that accepts every connection and never answers: what the interrupt, call
//! timeout and CLI `--timeout-ms` tests stop a call against. Connections stay open
//! until it is dropped.
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

pub struct StalledServer {
    pub url: String,
    _held: Arc<Mutex<Vec<TcpStream>>>,
}

impl StalledServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = held.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                keep.lock().unwrap().push(stream);
            }
        });
        StalledServer { url, _held: held }
    }
}
