//! The raw calls of the microVM module: the tun/tap ioctls, each wrapped once.

use std::os::fd::RawFd;

use nix::errno::Errno;

/// `TUNSETIFF`, `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// `TUNSETPERSIST`, `_IOW('T', 203, int)`.
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
/// `TUNSETOWNER`, `_IOW('T', 204, int)`.
const TUNSETOWNER: libc::c_ulong = 0x4004_54cc;
/// `TUNSETGROUP`, `_IOW('T', 206, int)`.
const TUNSETGROUP: libc::c_ulong = 0x4004_54ce;

fn check(ret: libc::c_int) -> Result<(), Errno> {
    if ret == -1 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `IFF_TUN_EXCL`: `TUNSETIFF` fails with `EBUSY` if the device exists.
const IFF_TUN_EXCL: libc::c_int = 0x8000;

/// `TUNSETIFF`: attaches the open `/dev/net/tun` descriptor `fd` to the tap device
/// `name` of the calling thread's network namespace (`IFF_TAP | IFF_NO_PI`), creating
/// it if there is none; with `create`, only creating it (`EBUSY` if it exists). `name`
/// is at most 15 bytes.
pub(crate) fn tun_set_iff(fd: RawFd, name: &str, create: bool) -> Result<(), Errno> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(Errno::EINVAL);
    }
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    let excl = if create { IFF_TUN_EXCL } else { 0 };
    req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | excl) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes the ifreq behind the valid pointer, which
    // holds a NUL-terminated name (the last byte stays zero).
    check(unsafe { libc::ioctl(fd, TUNSETIFF as _, &mut req as *mut libc::ifreq) })
}

/// `TUNSETPERSIST`: whether the attached device outlives its last descriptor.
pub(crate) fn tun_set_persist(fd: RawFd, persist: bool) -> Result<(), Errno> {
    // SAFETY: TUNSETPERSIST takes an integer argument.
    check(unsafe { libc::ioctl(fd, TUNSETPERSIST as _, libc::c_ulong::from(persist)) })
}

/// `TUNSETOWNER`: the host uid that may attach to the device without privileges.
pub(crate) fn tun_set_owner(fd: RawFd, uid: u32) -> Result<(), Errno> {
    // SAFETY: TUNSETOWNER takes an integer argument.
    check(unsafe { libc::ioctl(fd, TUNSETOWNER as _, libc::c_ulong::from(uid)) })
}

/// `TUNSETGROUP`: the host gid that may attach to the device without privileges.
pub(crate) fn tun_set_group(fd: RawFd, gid: u32) -> Result<(), Errno> {
    // SAFETY: TUNSETGROUP takes an integer argument.
    check(unsafe { libc::ioctl(fd, TUNSETGROUP as _, libc::c_ulong::from(gid)) })
}
