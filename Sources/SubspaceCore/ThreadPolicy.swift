import Foundation

/// How many BLAS threads a rank should run, from the cores it may use and the ranks sharing its node.
///
/// Under mpirun a rank is either bound to a subset of cores (then that subset is its own) or free to run
/// anywhere (then the node's cores are shared by the node's ranks). An explicit `SUBSPACE_BLAS_THREADS`
/// wins. OpenBLAS sizes its pool from the affinity mask at load time, which is why the count is set
/// explicitly rather than left to it.
public struct ThreadPolicy: Sendable, CustomStringConvertible {
    public let threads: Int
    public let allowedCores: Int
    public let onlineCores: Int
    public let ranksOnNode: Int
    public let reason: String
    /// A `SUBSPACE_BLAS_THREADS` that was not used as given, and why (shown once, by rank 0).
    public var warning: String? = nil

    public var description: String {
        "BLAS threads: \(threads) (\(reason); \(allowedCores) of \(onlineCores) cores allowed, \(ranksOnNode) rank\(ranksOnNode == 1 ? "" : "s") on this node)"
    }

    public static func decide(environment: [String: String] = ProcessInfo.processInfo.environment) -> ThreadPolicy {
        let online = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let allowed = allowedCoreCount() ?? online
        let local = Int(environment["OMPI_COMM_WORLD_LOCAL_SIZE"] ?? environment["MPI_LOCALNRANKS"] ?? "") ?? 1
        var warning: String? = nil
        if let forced = environment["SUBSPACE_BLAS_THREADS"] {
            if let n = Int(forced.trimmingCharacters(in: .whitespaces)), n >= 1 {
                guard n > allowed else {
                    return ThreadPolicy(threads: n, allowedCores: allowed, onlineCores: online, ranksOnNode: local,
                                        reason: "set by SUBSPACE_BLAS_THREADS")
                }
                var clamped = ThreadPolicy(threads: allowed, allowedCores: allowed, onlineCores: online, ranksOnNode: local,
                                           reason: "SUBSPACE_BLAS_THREADS clamped to the cores this rank may use")
                clamped.warning = "SUBSPACE_BLAS_THREADS=\(forced) is more than the \(allowed) cores this rank may use; using \(allowed)"
                return clamped
            }
            warning = "SUBSPACE_BLAS_THREADS=\(forced) is not a whole number ≥ 1; ignored"
        }
        var policy = allowed < online
            ? ThreadPolicy(threads: allowed, allowedCores: allowed, onlineCores: online, ranksOnNode: local,
                           reason: "bound to \(allowed) core\(allowed == 1 ? "" : "s")")
            : ThreadPolicy(threads: max(1, allowed / max(1, local)), allowedCores: allowed, onlineCores: online,
                           ranksOnNode: local, reason: "node's cores shared by its ranks")
        policy.warning = warning
        return policy
    }

    /// Applies the decision to OpenBLAS's pool.
    public func apply() { BLAS.threadCount = threads }

    /// Cores in this process's affinity mask, from /proc/self/status's `Cpus_allowed_list` (Swift does
    /// not see glibc's `sched_getaffinity`, which needs _GNU_SOURCE); nil where unknown.
    static func allowedCoreCount() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
        else { return nil }
        var count = 0
        for item in line.dropFirst("Cpus_allowed_list:".count).split(separator: ",") {
            let bounds = item.trimmingCharacters(in: .whitespaces).split(separator: "-").compactMap { Int($0) }
            switch bounds.count {
            case 1: count += 1
            case 2 where bounds[1] >= bounds[0]: count += bounds[1] - bounds[0] + 1
            default: return nil
            }
        }
        return count > 0 ? count : nil
    }
}
