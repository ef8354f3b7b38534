import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel

/// How the calibration covariance of a linear module's input is estimated.
public enum CovarianceEstimator: String, Sendable, CaseIterable, Codable {
    /// The reference code's: each calibration sequence's inputs X_s [T, in] are divided by their largest
    /// absolute value m_s before accumulating, and the sum is averaged over sequences:
    /// C = (1/S) Σ_s X_sᵀX_s / m_s². (The reference divides by |max X_s|, which is the same whenever the
    /// largest-magnitude entry is positive; max |X_s| is what its comment and the issue mean.)
    case scaled
    /// Uncentred and unscaled: C = (1/N) Σ_t x_t x_tᵀ over all N calibration tokens, so that
    /// E‖Uᵀx‖² = Σ of the eigenvalues U spans.
    case plain
}

/// A distinct linear input: modules of one GEMM group in one layer share it (q, k, v; gate, up).
public struct InputSite: Sendable, Hashable, Comparable {
    public let layer: Int
    public let group: LinearGroup
    public let width: Int

    public init(layer: Int, group: LinearGroup, width: Int) {
        self.layer = layer
        self.group = group
        self.width = width
    }

    public init(_ m: LinearModule) { self.init(layer: m.layer, group: m.group, width: m.inFeatures) }

    public static func < (a: InputSite, b: InputSite) -> Bool {
        a.layer != b.layer ? a.layer < b.layer : LinearGroup.allCases.firstIndex(of: a.group)! < LinearGroup.allCases.firstIndex(of: b.group)!
    }

    /// The sites of `modules`, in layer then group order.
    public static func of(_ modules: [LinearModule]) -> [InputSite] { Array(Set(modules.map(InputSite.init))).sorted() }
}

/// Accumulates Σ x xᵀ (double precision, upper triangle) of every site's input during forward passes
/// (`Transformer.linearInputObserver`), then sums over ranks. A non-finite input is recorded (the first
/// one, by module and sequence) and left out; `finish` turns it into an error on every rank.
public final class InputCovariance: LinearInputObserver {
    public let sites: [InputSite]
    public let estimator: CovarianceEstimator
    /// Per site, n×n (upper triangle filled while accumulating, symmetric after `finish`).
    public private(set) var sums: [[Double]]
    public private(set) var tokens = 0
    public private(set) var sequences = 0
    /// The first non-finite input seen on this rank.
    public private(set) var problem: String?
    /// HF module paths per site, for messages.
    let names: [InputSite: [String]]
    let index: [InputSite: Int]
    var scratch: [Double] = []
    var countedSite: InputSite?
    /// Sequence index of the current batch's first sequence (for messages).
    public var sequenceOffset = 0

    public init(modules: [LinearModule], estimator: CovarianceEstimator) {
        let sites = InputSite.of(modules)
        self.sites = sites
        self.estimator = estimator
        self.sums = sites.map { [Double](repeating: 0, count: $0.width * $0.width) }
        var names: [InputSite: [String]] = [:]
        for m in modules { names[InputSite(m), default: []].append(m.path) }
        self.names = names
        self.index = Dictionary(uniqueKeysWithValues: sites.enumerated().map { ($1, $0) })
        self.countedSite = sites.first
    }

    public func observe(layer: Int, group: LinearGroup, rows: UnsafePointer<Float>, stride: Int, width: Int, batch: Int, sequence: Int) {
        let site = InputSite(layer: layer, group: group, width: width)
        guard let i = index[site] else { return }
        if site == countedSite {
            tokens += batch * sequence
            sequences += batch
        }
        let T = sequence
        if scratch.count < batch * T * width { scratch = [Double](repeating: 0, count: batch * T * width) }
        for b in 0..<batch {
            var largest: Float = 0
            for t in 0..<T {
                let row = rows + (b * T + t) * stride
                for j in 0..<width {
                    let v = row[j]
                    if !v.isFinite {
                        if problem == nil {
                            problem = "a non-finite activation (\(v)) in the input of \(names[site]!.joined(separator: ", ")) " +
                                "at calibration sequence \(sequenceOffset + b), token \(t), feature \(j)"
                        }
                        return
                    }
                    largest = max(largest, abs(v))
                }
            }
            let factor = estimator == .scaled && largest > 0 ? 1 / Double(largest) : 1
            scratch.withUnsafeMutableBufferPointer { s in
                for t in 0..<T {
                    let row = rows + (b * T + t) * stride
                    let out = s.baseAddress! + (b * T + t) * width
                    for j in 0..<width { out[j] = Double(row[j]) * factor }
                }
            }
        }
        scratch.withUnsafeBufferPointer { s in
            sums[i].withUnsafeMutableBufferPointer { c in
                BLAS.syrkTransposed(n: width, k: batch * T, a: s.baseAddress!, lda: width, c: c.baseAddress!, ldc: width)
            }
        }
    }

    /// Sums over ranks (packed all-reduces of at most `bucketBytes` each, a larger site alone), divides
    /// by the estimator's count and symmetrises. Throws on every rank, naming the module, when any rank
    /// saw a non-finite input; every rank takes the same collective path.
    public func finish(communicator: any Communicator, bucketBytes: Int = 16 << 20) throws {
        var head = [Double(tokens), Double(sequences), problem == nil ? 0 : 1]
        try communicator.allReduce(&head, op: .sum)
        if head[2] > 0 {
            let messages = try communicator.allGatherArrays(Array((problem ?? "").utf8))
            let (r, bytes) = messages.enumerated().first { !$0.element.isEmpty }!
            throw AnalysisError("calibration: \(String(decoding: bytes, as: UTF8.self)) (rank \(r))")
        }
        tokens = Int(head[0])
        sequences = Int(head[1])
        guard tokens > 0 else { throw AnalysisError("calibration: no tokens were seen") }
        let limit = max(1, bucketBytes / 8)
        var bucket: [Int] = [], size = 0
        func flush() throws {
            defer { bucket = []; size = 0 }
            if bucket.count == 1 {
                try communicator.allReduce(&sums[bucket[0]], op: .sum)
                return
            }
            var packed: [Double] = []
            packed.reserveCapacity(size)
            for i in bucket { packed += sums[i] }
            try communicator.allReduce(&packed, op: .sum)
            var offset = 0
            for i in bucket {
                sums[i] = Array(packed[offset..<(offset + sums[i].count)])
                offset += sums[i].count
            }
        }
        for i in sites.indices {
            if size > 0 && size + sums[i].count > limit { try flush() }
            bucket.append(i)
            size += sums[i].count
        }
        if !bucket.isEmpty { try flush() }
        let divisor = Double(estimator == .scaled ? sequences : tokens)
        for (i, site) in sites.enumerated() {
            let n = site.width
            sums[i].withUnsafeMutableBufferPointer { c in
                for r in 0..<n {
                    for k in r..<n {
                        let v = c[r * n + k] / divisor
                        c[r * n + k] = v
                        c[k * n + r] = v
                    }
                }
            }
        }
    }

    /// The covariance of `site` (after `finish`).
    public func covariance(_ site: InputSite) -> [Double] { sums[index[site]!] }
}
