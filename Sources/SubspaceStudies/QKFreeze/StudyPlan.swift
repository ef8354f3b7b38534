/// Which ranks train which group, and when.
///
/// The study's runs are every (seed, mode) pair, seed-major. A *wave* runs up to `width` of them side by
/// side, each data-parallel over `ranksPerGroup` ranks of its own sub-communicator
/// (`Communicator.split(color:key:)`, contiguous ranks so a group stays on one node where it can):
///
/// - `worldSize ≥ modes`: waves as wide as the ranks allow, in whole seeds (every mode of a seed in the
///   same wave), `ranksPerGroup = worldSize / width`; ranks left over sit the wave out. np = 3 with
///   three modes: one wave, one rank per group.
/// - `worldSize < modes` (np = 1 or 2 with three modes): one run at a time, each on all ranks.
///
/// With fewer ranks than modes, why not two groups side by side and then the third? Because H3 compares
/// throughput: a group that ran alone would have the machine to itself while the others shared it, and
/// its tokens/s would not be comparable. One run at a time on every rank gives every group the same
/// ranks, the same data-parallel shape and an otherwise idle machine. Within a wave, groups share the
/// machine equally, and `ranksPerGroup` is the same in every wave.
public struct StudyPlan: Sendable, Equatable, Codable {
    public struct Run: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
        public let seed: UInt64
        public let mode: QKFreezeMode
        public var description: String { "\(mode.rawValue) seed \(seed)" }
    }

    public enum Schedule: String, Sendable, Codable {
        /// Several groups at once, each on its own ranks.
        case concurrent
        /// One group at a time on every rank.
        case sequential
    }

    public let worldSize: Int
    public let schedule: Schedule
    public let ranksPerGroup: Int
    /// The runs of each wave; run i of a wave uses ranks i·ranksPerGroup ..< (i+1)·ranksPerGroup.
    public let waves: [[Run]]

    public init(worldSize: Int, modes: [QKFreezeMode], seeds: [UInt64]) {
        precondition(worldSize >= 1 && !modes.isEmpty && !seeds.isEmpty, "a plan needs ranks, modes and seeds")
        let runs = seeds.flatMap { seed in modes.map { Run(seed: seed, mode: $0) } }
        let width: Int
        if worldSize >= modes.count {
            width = min(runs.count, worldSize) / modes.count * modes.count
        } else {
            width = 1
        }
        self.worldSize = worldSize
        self.schedule = width > 1 ? .concurrent : .sequential
        self.ranksPerGroup = worldSize / width
        self.waves = stride(from: 0, to: runs.count, by: width).map { Array(runs[$0..<min($0 + width, runs.count)]) }
    }

    /// The index in `waves[wave]` of the run `rank` takes part in, or nil if it sits the wave out.
    public func slot(of rank: Int, wave: Int) -> Int? {
        let slot = rank / ranksPerGroup
        return slot < waves[wave].count ? slot : nil
    }

    /// The world ranks of slot `slot`.
    public func ranks(ofSlot slot: Int) -> Range<Int> { (slot * ranksPerGroup)..<((slot + 1) * ranksPerGroup) }

    /// One line for the log.
    public var summary: String {
        let runs = waves.reduce(0) { $0 + $1.count }
        switch schedule {
        case .concurrent:
            return "\(runs) runs in \(waves.count) wave\(waves.count == 1 ? "" : "s") of up to \(waves.map(\.count).max()!) groups side by side, "
                + "\(ranksPerGroup) rank\(ranksPerGroup == 1 ? "" : "s") each (world of \(worldSize))"
        case .sequential:
            let ranks = "\(worldSize) rank\(worldSize == 1 ? "" : "s")"
            return runs == 1 ? "one run, data-parallel on \(ranks)"
                : "\(runs) runs one after another, each data-parallel on all \(ranks) (fewer ranks than groups; the same resources keep tokens/s comparable)"
        }
    }
}
