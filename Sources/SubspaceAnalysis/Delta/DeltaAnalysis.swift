/// Everything `analysis.json` holds: per-module figures of ΔW's spectrum, summaries by module kind,
/// category and depth, the change of non-target tensors, and how the work was split.
/// Keys are snake_case; undefined figures (e.g. of a ΔW that is exactly zero) are JSON null.
public struct DeltaAnalysis: Codable, Sendable {
    /// R, the rank the "at rank" figures and the factors use.
    public var rank: Int
    public var method: SVDMethod
    /// Randomized only: extra probes p and power iterations q.
    public var oversampling: Int?
    public var powerIterations: Int?
    public var seed: UInt64
    public var base: String
    public var tuned: String
    public var worldSize: Int
    /// The thresholds of `rank_for_energy`, e.g. [0.5, 0.9, 0.99].
    public var energyFractions: [Double]
    /// What each figure means, in words (part of the file so readers need not guess).
    public var definitions: [String: String]
    public var layers: [LayerDelta]
    public var summary: DeltaSummary
    public var nonTarget: [TensorDelta]
    public var plan: PlanSummary
    public var timing: TimingSummary
    public var warnings: [String]

    enum CodingKeys: String, CodingKey {
        case rank, method, oversampling, seed, base, tuned, definitions, layers, summary, plan, timing, warnings
        case powerIterations = "power_iterations"
        case worldSize = "world_size"
        case energyFractions = "energy_fractions"
        case nonTarget = "non_target"
    }

    /// The key of a threshold in `rank_for_energy` ("0.5", "0.9", "0.99").
    public static func key(_ fraction: Double) -> String { String(fraction) }

    static func definitions(method: SVDMethod, costModel: String) -> [String: String] {
        [
            "delta": "ΔW = W_tuned − W_base as [out, in] (PyTorch Linear orientation; GPT-2 Conv1D weights are transposed)",
            "energy_at_rank": "Σ_{i≤R} σ_i² / Σ_i σ_i²" + (method == .randomized ? " (denominator: the exact ‖ΔW‖_F², computed from ΔW)" : ""),
            "relative_error_at_rank": "‖ΔW − ΔW_R‖_F / ‖ΔW‖_F = √(1 − energy_at_rank), ΔW_R the rank-R truncation",
            "measured_relative_error_at_rank": "‖ΔW − B·A‖_F / ‖ΔW‖_F with the written factors, computed in float32",
            "rank_for_energy": "smallest k with Σ_{i≤k} σ_i² ≥ fraction · Σ σ_i² (null when a truncated spectrum does not reach it)",
            "effective_rank": "exp(−Σ p_i ln p_i) with p_i = σ_i² / Σ_j σ_j² (entropy of the energy-normalised spectrum; null unless the spectrum is complete)",
            "effective_rank_of_values": "Roy & Vetterli (2007): exp(−Σ p_i ln p_i) with p_i = σ_i / Σ_j σ_j",
            "relative_change": "‖ΔW‖_F / ‖W_base‖_F",
            "pooled_energy_at_rank": "Σ over the group's modules of Σ_{i≤R} σ_i², over Σ of ‖ΔW‖_F²",
            "factors": "lora_B = U_R·diag(√σ) [out, R], lora_A = diag(√σ)·V_Rᵀ [R, in], so lora_B·lora_A = ΔW_R",
            "cost_model": costModel,
        ]
    }
}

/// The SVD used for each ΔW.
public enum SVDMethod: String, Codable, Sendable, CaseIterable {
    /// Thin SVD by LAPACK `sgesdd`: every singular value.
    case full
    /// Halko–Martinsson–Tropp randomized range finder: the leading R + p values only.
    case randomized
}

/// One module's ΔW.
public struct LayerDelta: Codable, Sendable {
    /// The HF tensor name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    public var name: String
    /// The HF module path, e.g. `model.layers.0.self_attn.q_proj`.
    public var module: String
    public var layer: Int
    public var kind: ModuleKind
    public var category: ModuleKind.Category
    /// [out, in].
    public var shape: [Int]
    /// ‖ΔW‖_F.
    public var deltaNorm: Double
    /// ‖W_base‖_F.
    public var baseNorm: Double
    /// ‖ΔW‖_F / ‖W_base‖_F.
    public var relativeChange: Double?
    /// Descending; all min(out, in) with a full SVD, the leading R + p with a randomized one.
    public var singularValues: [Float]
    public var spectrumComplete: Bool
    /// ‖ΔW‖_F² (Σσ² for a complete spectrum).
    public var totalEnergy: Double
    public var energyAtRank: Double?
    public var relativeErrorAtRank: Double?
    public var measuredRelativeErrorAtRank: Double?
    /// Keys "0.5", "0.9", "0.99".
    public var rankForEnergy: [String: Int?]
    public var effectiveRank: Double?
    public var effectiveRankOfValues: Double?
    /// The rank that computed it.
    public var ownerRank: Int
    public var loadSeconds: Double
    public var svdSeconds: Double

    enum CodingKeys: String, CodingKey {
        case name, module, layer, kind, category, shape
        case deltaNorm = "delta_norm"
        case baseNorm = "base_norm"
        case relativeChange = "relative_change"
        case singularValues = "singular_values"
        case spectrumComplete = "spectrum_complete"
        case totalEnergy = "total_energy"
        case energyAtRank = "energy_at_rank"
        case relativeErrorAtRank = "relative_error_at_rank"
        case measuredRelativeErrorAtRank = "measured_relative_error_at_rank"
        case rankForEnergy = "rank_for_energy"
        case effectiveRank = "effective_rank"
        case effectiveRankOfValues = "effective_rank_of_values"
        case ownerRank = "owner_rank"
        case loadSeconds = "load_seconds"
        case svdSeconds = "svd_seconds"
    }

    /// The spectrum these figures came from.
    public var spectrum: Spectrum {
        spectrumComplete ? Spectrum(complete: singularValues) : Spectrum(leading: singularValues, totalEnergy: totalEnergy)
    }
}

/// Figures pooled over a group of modules (a kind, a category, a depth, or all).
public struct GroupSummary: Codable, Sendable {
    /// The kind ("q", "qkv", "down", …), category ("attention", "mlp"), "layer N", or "all".
    public var group: String
    /// For depth groups, the layer index.
    public var layer: Int?
    public var modules: Int
    /// √(Σ ‖ΔW‖_F²) over the group.
    public var deltaNorm: Double
    public var meanRelativeChange: Double?
    public var meanEnergyAtRank: Double?
    public var minEnergyAtRank: Double?
    public var pooledEnergyAtRank: Double?
    public var meanRelativeErrorAtRank: Double?
    public var meanRankForEnergy: [String: Double?]
    public var meanEffectiveRank: Double?
    public var svdSeconds: Double

    enum CodingKeys: String, CodingKey {
        case group, layer, modules
        case deltaNorm = "delta_norm"
        case meanRelativeChange = "mean_relative_change"
        case meanEnergyAtRank = "mean_energy_at_rank"
        case minEnergyAtRank = "min_energy_at_rank"
        case pooledEnergyAtRank = "pooled_energy_at_rank"
        case meanRelativeErrorAtRank = "mean_relative_error_at_rank"
        case meanRankForEnergy = "mean_rank_for_energy"
        case meanEffectiveRank = "mean_effective_rank"
        case svdSeconds = "svd_seconds"
    }

    init(group: String, layer: Int? = nil, _ members: [LayerDelta], rank: Int, fractions: [Double]) {
        func mean(_ xs: [Double?]) -> Double? {
            let known = xs.compactMap { $0 }
            return known.isEmpty ? nil : known.reduce(0, +) / Double(known.count)
        }
        self.group = group
        self.layer = layer
        modules = members.count
        let total = members.reduce(0) { $0 + $1.totalEnergy }
        deltaNorm = members.reduce(0) { $0 + $1.deltaNorm * $1.deltaNorm }.squareRoot()
        meanRelativeChange = mean(members.map(\.relativeChange))
        meanEnergyAtRank = mean(members.map(\.energyAtRank))
        minEnergyAtRank = members.compactMap(\.energyAtRank).min()
        pooledEnergyAtRank = total > 0 ? members.reduce(0) { $0 + ($1.energyAtRank ?? 0) * $1.totalEnergy } / total : nil
        meanRelativeErrorAtRank = mean(members.map(\.relativeErrorAtRank))
        var ranks: [String: Double?] = [:]
        for f in fractions {
            let key = DeltaAnalysis.key(f)
            ranks[key] = .some(mean(members.map { $0.rankForEnergy[key].flatMap { $0 }.map(Double.init) }))
        }
        meanRankForEnergy = ranks
        meanEffectiveRank = mean(members.map(\.effectiveRank))
        svdSeconds = members.reduce(0) { $0 + $1.svdSeconds }
    }
}

public struct DeltaSummary: Codable, Sendable {
    /// One per module kind present, attention kinds first.
    public var byKind: [GroupSummary]
    /// Attention (q/k/v/o, GPT-2's c_attn) and MLP.
    public var byCategory: [GroupSummary]
    /// One per transformer layer.
    public var byDepth: [GroupSummary]
    public var overall: GroupSummary

    enum CodingKeys: String, CodingKey {
        case overall
        case byKind = "by_kind"
        case byCategory = "by_category"
        case byDepth = "by_depth"
    }

    public init(_ layers: [LayerDelta], rank: Int, fractions: [Double]) {
        byKind = ModuleKind.allCases.compactMap { kind in
            let members = layers.filter { $0.kind == kind }
            return members.isEmpty ? nil : GroupSummary(group: kind.rawValue, members, rank: rank, fractions: fractions)
        }
        byCategory = ModuleKind.Category.allCases.compactMap { category in
            let members = layers.filter { $0.category == category }
            return members.isEmpty ? nil : GroupSummary(group: category.rawValue, members, rank: rank, fractions: fractions)
        }
        byDepth = Set(layers.map(\.layer)).sorted().map { l in
            GroupSummary(group: "layer \(l)", layer: l, layers.filter { $0.layer == l }, rank: rank, fractions: fractions)
        }
        overall = GroupSummary(group: "all", layers, rank: rank, fractions: fractions)
    }
}

/// The change of a tensor that is not a LoRA target.
public struct TensorDelta: Codable, Sendable {
    public var name: String
    public var shape: [Int]
    public var deltaNorm: Double
    public var baseNorm: Double
    public var relativeChange: Double?

    enum CodingKeys: String, CodingKey {
        case name, shape
        case deltaNorm = "delta_norm"
        case baseNorm = "base_norm"
        case relativeChange = "relative_change"
    }
}

/// How rank 0 split the modules.
public struct PlanSummary: Codable, Sendable {
    public var ranks: Int
    public var costModel: String
    public var perRankCost: [Double]
    public var perRankModules: [Int]
    public var perRankSVDSeconds: [Double]
    public var maxCost: Double
    public var meanCost: Double
    public var maxOverMean: Double

    enum CodingKeys: String, CodingKey {
        case ranks
        case costModel = "cost_model"
        case perRankCost = "per_rank_cost"
        case perRankModules = "per_rank_modules"
        case perRankSVDSeconds = "per_rank_svd_seconds"
        case maxCost = "max_cost"
        case meanCost = "mean_cost"
        case maxOverMean = "max_over_mean"
    }
}

public struct TimingSummary: Codable, Sendable {
    /// Wall time of the whole analysis on rank 0 (plan, rounds, gathers, non-target norms).
    public var wallSeconds: Double
    /// Σ of every module's SVD time (and the factors'), over all ranks.
    public var svdSecondsTotal: Double
    public var loadSecondsTotal: Double

    enum CodingKeys: String, CodingKey {
        case wallSeconds = "wall_seconds"
        case svdSecondsTotal = "svd_seconds_total"
        case loadSecondsTotal = "load_seconds_total"
    }
}

// Synthesized `Encodable` writes optionals with `encodeIfPresent`, which drops the key when nil. These
// more specific overloads, visible to the synthesized code of this module, write JSON null instead, so
// every figure's key is always present in the files.
extension KeyedEncodingContainer {
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { try encode(value, forKey: key) }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { try encode(value, forKey: key) }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { try encode(value, forKey: key) }
}
