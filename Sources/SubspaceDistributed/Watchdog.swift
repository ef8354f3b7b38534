#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The process's one watchdog thread: every `pollInterval` it drives the heartbeats of every live
/// `WatchedCommunicator` and checks whether one has waited in a collective past its limit.
///
/// Started on the first registration with an explicit `pthread_create` whose failure is thrown (a
/// `Foundation.Thread` drops it silently; the earlier watchdog never ran because its 64 KiB stack was
/// refused). The thread is detached and lives until the process exits; it makes MPI calls only while a
/// communicator is registered, and `MPIEnvironment.finalize` closes them all first.
final class Watchdog: Sendable {
    static let pollInterval: Double = 0.05

    /// The registered communicators. The thread polls them with the lock held, so one taken off the
    /// list is no longer touched by it.
    private let entries = Mutex<[WatchedCommunicator]>([])
    private static let shared = Mutex<Watchdog?>(nil)

    /// The running watchdog, started if needed.
    static func running() throws(CommunicatorError) -> Watchdog {
        try shared.withLock { (current) throws(CommunicatorError) -> Watchdog in
            if let current { return current }
            let watchdog = Watchdog()
            try watchdog.start()
            current = watchdog
            return watchdog
        }
    }

    /// The running watchdog, if any, without starting one.
    static var current: Watchdog? { shared.withLock { $0 } }

    private func start() throws(CommunicatorError) {
        let context = Unmanaged.passRetained(self).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        // 1 MiB: ample for polling, well above glibc's minimum plus the static TLS of OpenBLAS and MPI.
        var code = pthread_attr_setstacksize(&attributes, 1 << 20)
        if code == 0 { code = pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED)) }
        #if canImport(Glibc)
        var thread = pthread_t()
        #else
        var thread: pthread_t? = nil
        #endif
        if code == 0 {
            code = pthread_create(&thread, &attributes, { raw in
                Unmanaged<Watchdog>.fromOpaque(raw!).takeRetainedValue().loop()
            }, context)
        }
        guard code == 0 else {
            Unmanaged<Watchdog>.fromOpaque(context).release()
            throw CommunicatorError(operation: "watchdog", sequence: 0, rank: 0,
                                    reason: .invalidArgument("cannot start the watchdog thread: pthread_create failed with \(code) (\(String(cString: strerror(code))))"))
        }
    }

    private func loop() -> Never {
        while true {
            entries.withLock { list in
                for entry in list { entry.poll() }
            }
            usleep(UInt32(Self.pollInterval * 1e6))
        }
    }

    func register(_ communicator: WatchedCommunicator) {
        entries.withLock { $0.append(communicator) }
    }

    func deregister(_ communicator: WatchedCommunicator) {
        entries.withLock { $0.removeAll { $0 === communicator } }
    }

    /// The communicators still registered, in registration order.
    var registered: [WatchedCommunicator] { entries.withLock { $0 } }
}
