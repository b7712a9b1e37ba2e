//! File descriptors the harness itself inherited (from cargo, a shell, a CI
//! runner) must not reach the services it starts: a service that outlives a
//! killed harness would go on holding them, and with them a lock or a pipe
//! its owner waits on. Rust opens its own files and sockets close-on-exec;
//! what came in from outside is marked so here, once, before any spawn.

use std::os::fd::BorrowedFd;

/// Mark every open descriptor above stderr close-on-exec; returns how many
/// were not already.
pub fn mark_inherited_close_on_exec() -> usize {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    let mut marked = 0;
    for fd in fds {
        // SAFETY: the descriptor is only borrowed for two fcntl calls; one
        // that closed meanwhile (the directory listing's own) makes them fail, harmlessly.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let Ok(flags) = fcntl(borrowed, FcntlArg::F_GETFD) else { continue };
        let flags = FdFlag::from_bits_truncate(flags);
        if !flags.contains(FdFlag::FD_CLOEXEC) && fcntl(borrowed, FcntlArg::F_SETFD(flags | FdFlag::FD_CLOEXEC)).is_ok() {
            marked += 1;
        }
    }
    marked
}
