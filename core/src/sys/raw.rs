//! System calls made with the CPU's own instruction, for the two calls on the per-message path
//! (the epoll backend's `recv` and `send`).
//!
//! libc's `syscall(2)` shuffles all six argument registers, stores the error in the thread-local
//! `errno`, and the caller then reads it back; the kernel already returns `-errno` in a register.
//! On x86-64 and AArch64 the call is made directly; elsewhere it falls back to libc.

use crate::error::{Error, Result};

/// Makes system call `nr` with up to six arguments and returns the kernel's raw result:
/// non-negative on success, `-errno` on failure.
///
/// # Safety
/// The arguments must be what the kernel expects for `nr` (pointers valid for the lengths the
/// call is given, and so on), exactly as for `libc::syscall`.
#[inline(always)]
pub(crate) unsafe fn syscall6(nr: libc::c_long, args: [usize; 6]) -> isize {
    #[cfg(target_arch = "x86_64")]
    {
        let ret: isize;
        // SAFETY: the x86-64 Linux system call convention: number in rax, arguments in rdi, rsi,
        // rdx, r10, r8, r9; the kernel clobbers rcx and r11 and returns in rax. It does not touch
        // the user stack. The caller vouches for the arguments.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") nr as isize => ret,
                in("rdi") args[0],
                in("rsi") args[1],
                in("rdx") args[2],
                in("r10") args[3],
                in("r8") args[4],
                in("r9") args[5],
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }
    #[cfg(target_arch = "aarch64")]
    {
        let ret: isize;
        // SAFETY: the AArch64 Linux convention: number in x8, arguments in x0..x5, result in x0.
        // The caller vouches for the arguments.
        unsafe {
            std::arch::asm!(
                "svc 0",
                in("x8") nr,
                inlateout("x0") args[0] as isize => ret,
                in("x1") args[1],
                in("x2") args[2],
                in("x3") args[3],
                in("x4") args[4],
                in("x5") args[5],
                options(nostack),
            );
        }
        ret
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        // SAFETY: forwarded unchanged; the caller vouches for the arguments.
        let r = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]) };
        if r < 0 {
            Error::last_os_error().code() as isize
        } else {
            r as isize
        }
    }
}

/// A raw result as a `Result`: `-errno` becomes the error.
#[inline(always)]
pub(crate) fn cvt_raw(ret: isize) -> Result<usize> {
    if ret < 0 {
        Err(Error::from_errno(-ret as i32))
    } else {
        Ok(ret as usize)
    }
}
