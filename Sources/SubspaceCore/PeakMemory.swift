import Foundation

/// This process's resident memory from /proc/self/status (Linux): `VmHWM`, the peak, and `VmRSS`, now.
public enum PeakMemory {
    /// (peak, current) resident bytes; nil where /proc is not there.
    public static func read() -> (peak: Int, current: Int)? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        func kilobytes(_ key: String) -> Int? {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return nil }
            return line.split(separator: " ").compactMap { Int($0) }.first
        }
        guard let peak = kilobytes("VmHWM"), let current = kilobytes("VmRSS") else { return nil }
        return (peak * 1024, current * 1024)
    }

    /// Lowers the peak to the current resident size (writing 5 to /proc/self/clear_refs, Linux ≥ 4.0),
    /// so that a run that follows another in the same process reports its own peak. Returns whether it
    /// could. Memory the earlier run freed but the allocator kept still counts as resident.
    @discardableResult
    public static func resetPeak() -> Bool {
        guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? handle.close() }
        do { try handle.write(contentsOf: Data("5".utf8)) } catch { return false }
        return true
    }
}
