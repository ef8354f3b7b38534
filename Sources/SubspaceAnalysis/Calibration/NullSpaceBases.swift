import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel

/// The r smallest eigenpairs of one site's input covariance.
public struct NullSpaceBasis: Sendable {
    public let site: InputSite
    /// Ascending.
    public let eigenvalues: [Double]
    /// [r, width]: row i is the unit eigenvector of `eigenvalues[i]`, its largest-magnitude component
    /// made positive (LAPACK's sign is arbitrary; this makes results comparable across runs).
    public let basis: Tensor
    public let trace: Double
    public let largest: Double
    /// Which rank decomposed it.
    public let ownerRank: Int
    public let seconds: Double
}

/// What the decomposition reports as it goes (the library never prints).
public enum NullSpaceEvent: Sendable {
    case planned(WorkPlan, sites: [InputSite])
    case decomposed(InputSite, rank: Int, seconds: Double)
}

/// Eigendecompositions of the sites' covariances spread over ranks with the cost-balanced
/// (longest-processing-time) plan — cost n³ per site — each site on its owner, results all-gathered so
/// every rank holds every basis. Every rank must hold the reduced covariances (`InputCovariance.finish`).
public enum NullSpaceBases {
    public static func compute(_ covariance: InputCovariance, rank r: Int, communicator: any Communicator,
                               onEvent: (NullSpaceEvent) -> Void = { _ in }) throws -> [NullSpaceBasis] {
        let sites = covariance.sites
        let costs = sites.map { pow(Double($0.width), 3) }
        let plan = WorkPlan.longestProcessingTimeFirst(costs: costs, ranks: communicator.size)
        if communicator.rank == 0 { onEvent(.planned(plan, sites: sites)) }
        // Per owned site: [index, trace, largest, seconds, λ₁…λ_r] as doubles, basis as floats.
        var header: [Double] = [], vectors: [Float] = []
        var failure = ""
        for i in plan.order[communicator.rank] {
            let site = sites[i], n = site.width
            let start = DispatchTime.now().uptimeNanoseconds
            let eigen: (values: [Double], vectors: [Double])
            do { eigen = try LAPACK.symmetricEigen(covariance.covariance(site), n: n) } catch {
                failure = "layer \(site.layer) \(site.group) input covariance: \(error)"
                break
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            header += [Double(i), eigen.values.reduce(0, +), eigen.values.last ?? 0, seconds] + eigen.values.prefix(r)
            for k in 0..<r {
                let row = eigen.vectors[(k * n)..<((k + 1) * n)]
                let pivot = row.max { abs($0) < abs($1) } ?? 1
                let sign: Double = pivot < 0 ? -1 : 1
                vectors += row.map { Float($0 * sign) }
            }
            onEvent(.decomposed(site, rank: communicator.rank, seconds: seconds))
        }
        let failures = try communicator.allGatherArrays(Array(failure.utf8))
        if let bad = failures.firstIndex(where: { !$0.isEmpty }) {
            throw AnalysisError("eigendecomposition on rank \(bad): " + String(decoding: failures[bad], as: UTF8.self))
        }
        let headers = try communicator.allGatherArrays(header)
        let allVectors = try communicator.allGatherArrays(vectors)
        var out = [NullSpaceBasis?](repeating: nil, count: sites.count)
        for owner in 0..<communicator.size {
            var h = headers[owner][...], v = allVectors[owner][...]
            while !h.isEmpty {
                let i = Int(h[h.startIndex]), site = sites[i]
                let values = Array(h.dropFirst(4).prefix(r))
                out[i] = NullSpaceBasis(site: site, eigenvalues: values,
                                        basis: Tensor(shape: [r, site.width], values: Array(v.prefix(r * site.width))),
                                        trace: h[h.startIndex + 1], largest: h[h.startIndex + 2], ownerRank: owner,
                                        seconds: h[h.startIndex + 3])
                h = h.dropFirst(4 + r)
                v = v.dropFirst(r * site.width)
            }
        }
        return out.map { $0! }
    }
}
