//! TCP connections with timeouts and file-to-socket streaming.

use crate::addr::ServerAddr;
use crate::io::{IoError, wait};
use rustix::event::PollFlags;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::{AddressFamily, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6, connect};

/// Why a connection could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// No socket could be created (qmail: 56).
    Socket(Errno),
    /// No answer within the connect timeout (qmail: 72).
    Timeout,
    /// Refused or unreachable (qmail: 73).
    Refused(Errno),
}

/// Connects to `addr` within `secs` seconds. The socket is non-blocking
/// and close-on-exec; use `io::Timed` to talk over it.
pub fn connect_timeout(addr: &ServerAddr, secs: u32) -> Result<OwnedFd, ConnectError> {
    let family = match addr {
        ServerAddr::V4(..) => AddressFamily::INET,
        ServerAddr::V6(..) => AddressFamily::INET6,
    };
    let fd = crate::sys::tcp_socket(family).map_err(ConnectError::Socket)?;
    let started = match *addr {
        ServerAddr::V4(ip, port) => connect(&fd, &SocketAddrV4::new(Ipv4Addr::from(ip), port)),
        ServerAddr::V6(ip, port) => connect(&fd, &SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0)),
    };
    match started {
        Ok(()) => return Ok(fd),
        // The connection goes on in the background; wait for its outcome.
        Err(Errno::INPROGRESS) | Err(Errno::INTR) | Err(Errno::AGAIN) => {}
        Err(e) => return Err(ConnectError::Refused(e)),
    }
    match wait(fd.as_fd(), PollFlags::OUT, secs) {
        Ok(()) => {}
        Err(IoError::Timeout) => return Err(ConnectError::Timeout),
        Err(IoError::Os(e)) => return Err(ConnectError::Refused(e)),
    }
    match crate::sys::socket_error(fd.as_fd()) {
        Ok(Ok(())) => Ok(fd),
        Ok(Err(Errno::TIMEDOUT)) => Err(ConnectError::Timeout),
        Ok(Err(e)) | Err(e) => Err(ConnectError::Refused(e)),
    }
}

/// Why streaming a file range to a socket failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The network side failed (or timed out).
    Net(IoError),
    /// The file could not be read, or was shorter than announced.
    Input(IoError),
}

/// Bytes per read/write round when sendfile can't be used.
const FALLBACK_BUF: usize = 4096;

/// Sends `len` bytes of `file` starting at `offset` to the non-blocking
/// socket `sock`, waiting at most `secs` for each chunk. The bytes go from
/// the page cache to the socket (sendfile) and never through picoq's memory;
/// where sendfile is missing or refuses the pair, a small buffer carries
/// them (set up only then: zeroing it is not free).
pub fn send_file_range(
    sock: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    mut offset: u64,
    len: u64,
    secs: u32,
) -> Result<(), SendError> {
    let end = offset + len;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    while offset < end {
        let chunk = (end - offset).min(1 << 30) as usize;
        match rustix::fs::sendfile(sock, file, Some(&mut offset), chunk) {
            Ok(0) => return Err(SendError::Input(IoError::Os(Errno::IO))),
            Ok(_) => {}
            Err(Errno::AGAIN) => wait(sock, PollFlags::OUT, secs).map_err(SendError::Net)?,
            Err(Errno::INTR) => {}
            // Not supported for this descriptor pair: copy through `buf`.
            Err(Errno::INVAL) | Err(Errno::NOSYS) | Err(Errno::OPNOTSUPP) => break,
            Err(e) if is_input_error(e) => return Err(SendError::Input(IoError::Os(e))),
            Err(e) => return Err(SendError::Net(IoError::Os(e))),
        }
    }
    if offset == end {
        return Ok(());
    }
    let buf = &mut [0u8; FALLBACK_BUF];
    while offset < end {
        let want = ((end - offset) as usize).min(buf.len());
        let n = loop {
            match rustix::io::pread(file, &mut buf[..want], offset) {
                Ok(0) => return Err(SendError::Input(IoError::Os(Errno::IO))),
                Ok(n) => break n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(SendError::Input(IoError::Os(e))),
            }
        };
        crate::io::write_all_timeout(sock, &buf[..n], secs).map_err(SendError::Net)?;
        offset += n as u64;
    }
    Ok(())
}

/// sendfile reports both sides' errors through one errno; these can only
/// come from reading the file.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn is_input_error(e: Errno) -> bool {
    matches!(e, Errno::IO | Errno::BADF | Errno::OVERFLOW | Errno::NOMEM)
}

/// Sets TCP_NODELAY: picoq writes whole protocol units itself, so Nagle's
/// algorithm would only add delayed-ACK stalls between them.
pub fn set_nodelay<Fd: AsFd>(sock: Fd) {
    crate::sys::set_nodelay(sock.as_fd());
}
