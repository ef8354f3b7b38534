#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A rank's last lines, kept from being lost when the launcher tears the job down.
///
/// Under `mpirun` a rank's stdout and stderr are pipes the launcher's daemon reads. When a rank ends with
/// an error (a refused option, `MPI_Abort`, the watchdog's `_exit`), the launcher kills the job, and lines
/// written just before can still sit unread in the pipe when it stops reading: the job then ends with
/// only mpirun's banner and no reason (seen once in CI for a refused `bench allreduce --sizes`). Waiting
/// until the pipe is empty — the daemon has the bytes — before ending closes that window.
public enum LauncherOutput {
    /// True when an MPI launcher started this process (its stdout/stderr are then the launcher's pipes).
    public static var underLauncher: Bool {
        getenv("OMPI_COMM_WORLD_SIZE") != nil || getenv("PMIX_RANK") != nil || getenv("PMI_RANK") != nil
    }

    /// Waits until the launcher has read everything written to stdout and stderr, at most `timeout`
    /// seconds; only for pipes and only under a launcher (a pipe to `less` is never waited on). With
    /// `flushStdio`, C stdio buffers are flushed first — not from a thread that may interrupt another
    /// inside stdio (the watchdog writes with `write(2)` and passes false).
    public static func waitUntilRead(timeout: Double = 2, flushStdio: Bool = true) {
        guard underLauncher else { return }
        if flushStdio { fflush(nil) }
        let deadline = DispatchClock.now + UInt64(max(0, timeout) * 1e9)
        for fd: Int32 in [1, 2] {
            var info = stat()
            guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFIFO else { continue }
            while unread(fd) > 0 && DispatchClock.now < deadline { usleep(1000) }
        }
    }

    /// Installs `waitUntilRead()` as an exit handler (for paths that end with `exit`, such as the argument
    /// parser's refusals). Call once, early.
    public static func waitAtExit() {
        guard underLauncher else { return }
        atexit { LauncherOutput.waitUntilRead() }
    }

    /// Bytes written to the pipe `fd` and not yet read (Linux: FIONREAD on either end of a pipe).
    static func unread(_ fd: Int32) -> Int32 {
        var count: Int32 = 0
        return ioctl(fd, UInt(FIONREAD), &count) == 0 ? count : 0
    }
}
