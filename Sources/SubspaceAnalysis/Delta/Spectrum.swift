import Foundation

/// Figures of a singular spectrum σ₁ ≥ σ₂ ≥ … of a matrix M, in double precision.
///
/// `totalEnergy` is ‖M‖_F² = Σᵢ σᵢ² over the whole spectrum. With a full SVD that is the sum of the
/// values held; a truncated (randomized) spectrum holds only the leading values, so the caller passes the
/// exact ‖M‖_F² computed from M itself and `isComplete` is false.
public struct Spectrum: Sendable, Equatable {
    /// Singular values, descending.
    public let values: [Double]
    public let totalEnergy: Double
    public let isComplete: Bool

    /// A complete spectrum: the total energy is Σσ².
    public init(complete values: [Float]) {
        self.values = values.map { Double(max($0, 0)) }
        self.totalEnergy = self.values.reduce(0) { $0 + $1 * $1 }
        self.isComplete = true
    }

    /// The leading values of a spectrum whose total energy ‖M‖_F² is known.
    public init(leading values: [Float], totalEnergy: Double) {
        self.values = values.map { Double(max($0, 0)) }
        self.totalEnergy = totalEnergy
        self.isComplete = false
    }

    /// Σ_{i≤k} σᵢ², for k up to the values held.
    public func energy(upTo k: Int) -> Double {
        values.prefix(max(0, k)).reduce(0) { $0 + $1 * $1 }
    }

    /// Share of the energy kept by the best rank-`rank` approximation, Σ_{i≤R} σᵢ² / Σᵢ σᵢ² (nil for a
    /// zero matrix). Clamped to [0, 1] against rounding of a truncated spectrum's total.
    public func energyFraction(atRank rank: Int) -> Double? {
        guard totalEnergy > 0 else { return nil }
        return min(1, max(0, energy(upTo: rank) / totalEnergy))
    }

    /// ‖M − M_R‖_F / ‖M‖_F for the rank-R truncation, √(1 − energy) (Eckart–Young; also exact for a
    /// randomized truncation, which projects M onto an orthonormal basis).
    public func relativeError(atRank rank: Int) -> Double? {
        guard totalEnergy > 0 else { return nil }
        return (max(0, totalEnergy - energy(upTo: rank)) / totalEnergy).squareRoot()
    }

    /// Cumulative energy fractions after 1, 2, … values held.
    public var cumulativeEnergy: [Double] {
        guard totalEnergy > 0 else { return values.map { _ in 0 } }
        var running = 0.0
        return values.map { running += $0 * $0; return min(1, running / totalEnergy) }
    }

    /// The smallest k with Σ_{i≤k} σᵢ² ≥ `fraction` · Σσ²; nil for a zero matrix, or when the values
    /// held of a truncated spectrum do not reach it.
    public func rank(forEnergy fraction: Double) -> Int? {
        guard totalEnergy > 0 else { return nil }
        let target = fraction * totalEnergy
        // Relative slack for rounding: a spectrum that holds exactly `fraction` must count as reaching it.
        let slack = 1e-12 * totalEnergy
        var running = 0.0
        for (i, s) in values.enumerated() {
            running += s * s
            if running >= target - slack { return i + 1 }
        }
        return nil
    }

    /// exp(H(p)) with pᵢ = σᵢ² / Σσ² and H the Shannon entropy in nats: k for k equal values, 1 for a
    /// rank-1 matrix. Needs the whole spectrum (nil for a truncated one, or a zero matrix).
    public var effectiveRank: Double? { entropyRank(values.map { $0 * $0 }) }

    /// Roy & Vetterli's (2007) original definition, exp(H(p)) with pᵢ = σᵢ / Σσ.
    public var effectiveRankOfValues: Double? { entropyRank(values) }

    private func entropyRank(_ weights: [Double]) -> Double? {
        guard isComplete else { return nil }
        let total = weights.reduce(0, +)
        guard total > 0 else { return nil }
        var h = 0.0
        for w in weights where w > 0 {
            let p = w / total
            h -= p * Foundation.log(p)
        }
        return Foundation.exp(h)
    }
}
