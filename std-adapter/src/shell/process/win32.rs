//! The Windows calls the process runner makes, and the only foreign calls on Windows: a Job
//! Object made, given a process and terminated; a process created suspended let run; the
//! console and its code pages asked for; a process's exit waited for. They go through `windows-sys` (a dependency
//! already, for sockets and the file tree): std has no Job Objects and does not hand out the
//! suspended thread, and the Job Object crates (win32job) wrap the heavier `windows` bindings
//! for the same three calls and still leave the thread to resume.

use std::io;
use std::os::windows::io::{AsRawHandle, HandleOrInvalid, HandleOrNull, OwnedHandle};
use std::process::Child;
use std::time::Duration;

use windows_sys::Win32::Foundation::{HANDLE, WAIT_FAILED};
use windows_sys::Win32::Globalization::GetOEMCP;
use windows_sys::Win32::System::Console::GetConsoleOutputCP;
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, TH32CS_SNAPTHREAD, THREADENTRY32, Thread32First, Thread32Next,
};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectExtendedLimitInformation,
    SetInformationJobObject, TerminateJobObject,
};
use windows_sys::Win32::System::Threading::{
    OpenThread, ResumeThread, THREAD_SUSPEND_RESUME, WaitForSingleObject,
};

pub(super) use windows_sys::Win32::System::Threading::{CREATE_NO_WINDOW, CREATE_SUSPENDED};

fn raw(handle: &impl AsRawHandle) -> HANDLE {
    handle.as_raw_handle() as HANDLE
}

/// The handle a creating call returned, owned, or the thread's last error if it returned its
/// failure value (std's `HandleOrNull` and `HandleOrInvalid` check which).
fn owned(handle: impl TryInto<OwnedHandle>) -> io::Result<OwnedHandle> {
    handle.try_into().map_err(|_| io::Error::last_os_error())
}

/// A nonzero BOOL, or the thread's last error.
fn succeeded(ok: i32) -> io::Result<()> {
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A new, empty Job Object whose processes die when its last handle is closed.
pub(super) fn new_job() -> io::Result<OwnedHandle> {
    // SAFETY: both pointers may be null (default security, no name); the call returns a new
    // handle, which nothing else owns, or null.
    let job = owned(unsafe {
        HandleOrNull::from_raw_handle(CreateJobObjectW(std::ptr::null(), std::ptr::null()))
    })?;
    let mut limits = JOBOBJECT_EXTENDED_LIMIT_INFORMATION::default();
    limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    // SAFETY: `limits` is a live JOBOBJECT_EXTENDED_LIMIT_INFORMATION, the type this class
    // reads, and the length given is its size; the job handle is open.
    succeeded(unsafe {
        SetInformationJobObject(
            raw(&job),
            JobObjectExtendedLimitInformation,
            (&raw const limits).cast(),
            size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
        )
    })?;
    Ok(job)
}

/// Puts `child` in `job`.
pub(super) fn assign(job: &OwnedHandle, child: &Child) -> io::Result<()> {
    // SAFETY: both handles are open: the job's is borrowed from its owner, the process's from
    // `child`.
    succeeded(unsafe { AssignProcessToJobObject(raw(job), raw(child)) })
}

/// Terminates every process in `job`, which end with `exit_code`.
pub(super) fn terminate(job: &OwnedHandle, exit_code: u32) -> io::Result<()> {
    // SAFETY: the job's handle is open, borrowed from its owner.
    succeeded(unsafe { TerminateJobObject(raw(job), exit_code) })
}

/// The code pages of this process: its console's output (`None` without a console) and the
/// system's OEM one.
pub(crate) fn code_pages() -> (Option<u32>, u32) {
    // SAFETY: both calls take nothing and return a number; GetConsoleOutputCP returns 0 when
    // this process has no console.
    let (console, oem) = unsafe { (GetConsoleOutputCP(), GetOEMCP()) };
    ((console != 0).then_some(console), oem)
}

/// Whether this process has a console.
pub(super) fn has_console() -> bool {
    code_pages().0.is_some()
}

/// Waits up to `timeout` for `child` to exit.
pub(super) fn wait_for_exit(child: &Child, timeout: Duration) -> io::Result<()> {
    let millis = u32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(u32::MAX - 1);
    // SAFETY: the process handle is open for as long as `child` lives.
    if unsafe { WaitForSingleObject(raw(child), millis) } == WAIT_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Lets a process created suspended run: resumes its threads (a new process has one). std does
/// not hand out the thread handle `CreateProcessW` returned, so the thread is found by its
/// process id in a Toolhelp snapshot; the process handle the caller holds keeps the id from
/// being reused meanwhile.
pub(super) fn resume_process(pid: u32) -> io::Result<()> {
    // SAFETY: the call takes two integers and returns a new handle, which nothing else owns,
    // or INVALID_HANDLE_VALUE.
    let snapshot =
        unsafe { HandleOrInvalid::from_raw_handle(CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0)) };
    let snapshot = owned(snapshot)?;
    let mut entry = THREADENTRY32 {
        dwSize: size_of::<THREADENTRY32>() as u32,
        ..THREADENTRY32::default()
    };
    let mut resumed = 0;
    let mut first = true;
    loop {
        // SAFETY: the snapshot is open and `entry` is a live THREADENTRY32 whose dwSize is set,
        // as Thread32First and Thread32Next require; they write only into it.
        let found = unsafe {
            if first {
                Thread32First(raw(&snapshot), &mut entry)
            } else {
                Thread32Next(raw(&snapshot), &mut entry)
            }
        };
        if found == 0 {
            break;
        }
        first = false;
        if entry.th32OwnerProcessID == pid {
            resume_thread(entry.th32ThreadID)?;
            resumed += 1;
        }
    }
    if resumed == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "its suspended thread was not found",
        ));
    }
    Ok(())
}

fn resume_thread(id: u32) -> io::Result<()> {
    // SAFETY: the call takes integers and returns a new handle, which nothing else owns, or
    // null.
    let thread =
        owned(unsafe { HandleOrNull::from_raw_handle(OpenThread(THREAD_SUSPEND_RESUME, 0, id)) })?;
    // SAFETY: the thread handle is open, with THREAD_SUSPEND_RESUME access.
    if unsafe { ResumeThread(raw(&thread)) } == u32::MAX {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
