//! TCP_NODELAY on the plugin's gRPC connection.
//!
//! tf-provider 0.2 accepts Terraform's connection on a listener of its own and never sets
//! TCP_NODELAY on it, so Nagle's algorithm holds back the small writes of each gRPC answer until
//! the previous segment is acknowledged: a `terraform plan` of 500 resources waited 3.5 s of its
//! 4.7 s on that (measured with the plan benchmark). The provider cannot reach that socket
//! through tf-provider's API: a helper thread started before the server watches the process's
//! descriptors until Terraform's connection is there and sets TCP_NODELAY on it (what tonic does
//! for the connections it accepts itself).

/// Starts a thread that sets TCP_NODELAY on the first connected TCP socket(s) of the process,
/// polling every 2 ms for up to 10 s (Terraform connects within milliseconds of the handshake).
pub fn when_connected() {
    std::thread::spawn(|| {
        for _ in 0..5000 {
            if on_open_sockets() > 0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    });
}

/// Sets TCP_NODELAY on the process's connected TCP sockets; returns how many it found.
/// Anything that is not one is left alone.
#[cfg(target_os = "linux")]
pub fn on_open_sockets() -> usize {
    use std::mem::ManuallyDrop;
    use std::os::fd::FromRawFd;

    let mut connected = 0;
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    for entry in dir.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor is only borrowed: ManuallyDrop never closes it, and
        // setsockopt on a socket that is not TCP fails without effect.
        let stream = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) });
        if stream.peer_addr().is_ok() && stream.set_nodelay(true).is_ok() {
            connected += 1;
        }
    }
    connected
}

#[cfg(not(target_os = "linux"))]
pub fn on_open_sockets() -> usize {
    0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn sets_nodelay_on_an_accepted_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(!accepted.nodelay().unwrap());
        assert!(super::on_open_sockets() >= 2);
        assert!(accepted.nodelay().unwrap());
        assert!(client.nodelay().unwrap());
        // The listener and the sockets are still open and usable.
        assert!(listener.local_addr().is_ok());
    }
}
