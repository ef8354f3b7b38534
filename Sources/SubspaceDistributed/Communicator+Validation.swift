/// Argument checks shared by every implementation. Each runs before any communication and throws
/// `invalidArgument`, so a bad call fails fast on the rank that made it instead of trapping.
extension CollectiveContext {
    /// Checks that `counts` has one non-negative entry per rank and returns the offsets and the total.
    func validateCounts(_ counts: [Int], size: Int) throws(CommunicatorError) -> (
        offsets: [Int], total: Int
    ) {
        guard counts.count == size else {
            throw invalid("counts has \(counts.count) entries but the communicator has \(size) ranks")
        }
        var offsets = [Int]()
        offsets.reserveCapacity(size)
        var total = 0
        for (r, c) in counts.enumerated() {
            guard c >= 0 else { throw invalid("counts[\(r)] is negative (\(c))") }
            offsets.append(total)
            total += c
        }
        return (offsets, total)
    }

    func validateRoot(_ root: Int, size: Int) throws(CommunicatorError) {
        guard (0..<size).contains(root) else {
            throw invalid("root \(root) is not a rank of a communicator of size \(size)")
        }
    }

    func validateCount(_ name: String, _ actual: Int, expected: Int) throws(CommunicatorError) {
        guard actual == expected else {
            throw invalid("\(name) holds \(actual) elements but \(expected) are required")
        }
    }

    /// Guards against foreign `CollectiveElement` conformances whose layout disagrees with their kind.
    func validateElement<T: CollectiveElement>(_: T.Type) throws(CommunicatorError) {
        guard MemoryLayout<T>.stride == T.collectiveKind.byteCount else {
            throw invalid(
                "\(T.self) has stride \(MemoryLayout<T>.stride) but claims kind \(T.collectiveKind)")
        }
    }
}
