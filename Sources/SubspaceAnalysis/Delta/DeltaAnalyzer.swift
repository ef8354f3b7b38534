import Foundation
import SubspaceCore
import SubspaceDistributed

/// How ΔW is decomposed.
public struct DeltaAnalysisOptions: Sendable, Equatable {
    /// R: the rank of the "at rank" figures and of the factors.
    public var rank: Int
    public var method: SVDMethod
    /// Randomized only: extra random probes p (R + p values are computed) and power iterations q.
    public var oversampling: Int
    public var powerIterations: Int
    /// Randomized only: module i draws its probes from `RandomStream(seed:).split(i)`, whatever the
    /// world size, so results do not depend on which rank computed them.
    public var seed: UInt64
    /// Thresholds of `rank_for_energy`.
    public var energyFractions: [Double]

    public init(rank: Int, method: SVDMethod = .full, oversampling: Int = 10, powerIterations: Int = 2,
                seed: UInt64 = 0, energyFractions: [Double] = [0.5, 0.9, 0.99]) {
        self.rank = rank
        self.method = method
        self.oversampling = oversampling
        self.powerIterations = powerIterations
        self.seed = seed
        self.energyFractions = energyFractions
    }

    /// Problems with the options, as messages naming the option.
    public func problems() -> [String] {
        var out: [String] = []
        if rank < 1 { out.append("rank must be ≥ 1, got \(rank)") }
        if oversampling < 0 { out.append("oversampling must be ≥ 0, got \(oversampling)") }
        if powerIterations < 0 { out.append("power iterations must be ≥ 0, got \(powerIterations)") }
        if !energyFractions.allSatisfy({ $0 > 0 && $0 <= 1 }) { out.append("energy fractions must be in (0, 1]") }
        return out
    }

    /// Values a randomized SVD of an m×n matrix computes: R + p, at most min(m, n).
    public func randomizedWidth(_ m: Int, _ n: Int) -> Int { min(min(rank, min(m, n)) + oversampling, min(m, n)) }

    /// Relative cost of decomposing an m×n ΔW: m·n·min(m, n) for a full SVD, m·n·(R + p) for a
    /// randomized one (its power iterations scale every module alike, so they do not change the plan).
    public func cost(_ m: Int, _ n: Int) -> Double {
        switch method {
        case .full: Double(m) * Double(n) * Double(min(m, n))
        case .randomized: Double(m) * Double(n) * Double(randomizedWidth(m, n))
        }
    }

    public var costModel: String {
        switch method {
        case .full: "m·n·min(m, n) (full SVD), longest-processing-time-first"
        case .randomized: "m·n·min(R + p, min(m, n)) (randomized SVD), longest-processing-time-first"
        }
    }
}

/// Rank-R factors of one module's ΔW, PEFT-shaped: B·A = ΔW_R.
public struct ModuleFactors: Sendable {
    /// The HF module path.
    public var path: String
    /// lora_A [R, in] = diag(√σ)·V_Rᵀ.
    public var a: Tensor
    /// lora_B [out, R] = U_R·diag(√σ).
    public var b: Tensor
}

/// What the analysis reports as it goes; the library never prints.
public enum DeltaAnalysisEvent: Sendable {
    /// Rank 0 only: the plan, before any work.
    case planned(WorkPlan, modules: [DeltaModule])
    /// On the owner: one module done.
    case module(DeltaModule, index: Int, rank: Int, loadSeconds: Double, svdSeconds: Double)
}

/// The result on rank 0: the figures and the factors.
public struct DeltaAnalysisOutcome: Sendable {
    public var analysis: DeltaAnalysis
    /// In module order.
    public var factors: [ModuleFactors]
}

/// The distributed ΔW analysis.
///
/// Rank 0 plans which rank owns which module (by SVD cost, longest first) and broadcasts the plan. The
/// modules are then taken in rounds, each rank at most one module per round: the source delivers the
/// module's base and tuned weights to its owner, the owner forms ΔW and decomposes it, and rank 0
/// gathers the round's results — figures, singular values and the rank-R factors, R·(m + n) numbers per
/// module — never a ΔW. Non-target tensors are reduced to norms by the source. Every rank calls `run`;
/// rank 0 gets the outcome, the others nil.
public enum DeltaAnalyzer {
    public static func run(
        source: any DeltaSource, options: DeltaAnalysisOptions, communicator: any Communicator,
        onEvent: (DeltaAnalysisEvent) -> Void = { _ in }
    ) throws -> DeltaAnalysisOutcome? {
        if let problem = options.problems().first { throw AnalysisError(problem) }
        let start = DispatchTime.now().uptimeNanoseconds
        let (rank, size) = (communicator.rank, communicator.size)
        let isRoot = rank == 0
        let modules = source.modules
        // The rank against the modules' sizes, before any SVD: a module's rank-R factors are padded with
        // zeros past min(out, in) (so every module's factors have rank R, as a uniform svd-delta
        // initialisation needs), but a rank beyond every module's min(out, in) only pads: refused.
        if let largest = modules.max(by: { min($0.outFeatures, $0.inFeatures) < min($1.outFeatures, $1.inFeatures) }),
           options.rank > min(largest.outFeatures, largest.inFeatures) {
            let k = min(largest.outFeatures, largest.inFeatures)
            throw AnalysisError(tensor: largest.name, "rank \(options.rank) is more than min(out, in) = \(k) of this \(largest.outFeatures)×\(largest.inFeatures) "
                                + "module, the largest of the model: no module has that many singular values; the rank can be at most \(k)")
        }
        let costs = modules.map { options.cost($0.outFeatures, $0.inFeatures) }

        var owners: [Int64] = isRoot
            ? WorkPlan.longestProcessingTimeFirst(costs: costs, ranks: size).owners.map(Int64.init) : []
        if size > 1 { try communicator.broadcast(&owners, root: 0) }
        let plan = WorkPlan(owners: owners.map { Int($0) }, costs: costs, ranks: size)
        if isRoot { onEvent(.planned(plan, modules: modules)) }

        var layers = [LayerDelta?](repeating: nil, count: isRoot ? modules.count : 0)
        var factors = [ModuleFactors?](repeating: nil, count: isRoot ? modules.count : 0)
        let encoder = JSONEncoder()
        for round in 0..<plan.roundCount {
            let roundOwners: [Int?] = (0..<size).map { r in round < plan.order[r].count ? plan.order[r][round] : nil }
            let loadStart = DispatchTime.now().uptimeNanoseconds
            let pair = try source.loadRound(owners: roundOwners, communicator: communicator)
            let loadSeconds = seconds(since: loadStart)

            var payload: [UInt8] = []
            var values: [Float] = []
            if let index = roundOwners[rank] {
                guard let pair else {
                    throw AnalysisError(tensor: modules[index].name, "the source delivered no weights to the module's owner (rank \(rank))")
                }
                let module = modules[index]
                guard pair.base.shape == module.shape else {
                    throw AnalysisError(tensor: module.name, "source delivered shape \(pair.base.shape), expected \(module.shape)")
                }
                var (layer, factor) = try analyze(pair, module: module, index: index, options: options)
                layer.ownerRank = rank
                layer.loadSeconds = loadSeconds
                onEvent(.module(module, index: index, rank: rank, loadSeconds: loadSeconds, svdSeconds: layer.svdSeconds))
                payload = Array(try encoder.encode(IndexedLayer(index: index, layer: layer)))
                values = factor.b.scalars + factor.a.scalars
            }
            let gathered = size > 1 ? try communicator.gather(payload, root: 0) : [payload]
            let gatheredValues = size > 1 ? try communicator.gather(values, root: 0) : [values]
            guard isRoot, let gathered, let gatheredValues else { continue }
            for (bytes, flat) in zip(gathered, gatheredValues) where !bytes.isEmpty {
                let item = try JSONDecoder().decode(IndexedLayer.self, from: Data(bytes))
                let module = modules[item.index]
                let bCount = module.outFeatures * options.rank
                layers[item.index] = item.layer
                factors[item.index] = ModuleFactors(
                    path: module.path,
                    a: Tensor(shape: [options.rank, module.inFeatures], values: Array(flat[bCount...])),
                    b: Tensor(shape: [module.outFeatures, options.rank], values: Array(flat[..<bCount])))
            }
        }

        let norms = try source.otherTensorNorms(communicator: communicator)
        guard isRoot else { return nil }
        let done = layers.compactMap { $0 }
        precondition(done.count == modules.count, "\(modules.count - done.count) modules were not analysed")
        let nonTarget = zip(source.otherTensors, norms).map { info, n in
            let (d, b) = (n.delta.squareRoot(), n.base.squareRoot())
            return TensorDelta(name: info.name, shape: info.shape, deltaNorm: d, baseNorm: b, relativeChange: b > 0 ? d / b : nil)
        }
        var perRankSeconds = [Double](repeating: 0, count: size)
        for l in done { perRankSeconds[l.ownerRank] += l.svdSeconds }
        let analysis = DeltaAnalysis(
            rank: options.rank, method: options.method,
            oversampling: options.method == .randomized ? options.oversampling : nil,
            powerIterations: options.method == .randomized ? options.powerIterations : nil,
            seed: options.seed, base: source.baseDescription, tuned: source.tunedDescription, worldSize: size,
            energyFractions: options.energyFractions,
            definitions: DeltaAnalysis.definitions(method: options.method, costModel: options.costModel),
            layers: done,
            summary: DeltaSummary(done, rank: options.rank, fractions: options.energyFractions),
            nonTarget: nonTarget,
            plan: PlanSummary(ranks: size, costModel: options.costModel, perRankCost: plan.rankCosts,
                              perRankModules: plan.order.map(\.count), perRankSVDSeconds: perRankSeconds,
                              maxCost: plan.maxCost, meanCost: plan.meanCost, maxOverMean: plan.maxOverMean),
            timing: TimingSummary(wallSeconds: seconds(since: start),
                                  svdSecondsTotal: done.reduce(0) { $0 + $1.svdSeconds },
                                  loadSecondsTotal: done.reduce(0) { $0 + $1.loadSeconds }),
            warnings: source.warnings)
        return DeltaAnalysisOutcome(analysis: analysis, factors: factors.map { $0! })
    }

    /// Decomposes one module's ΔW on this rank: figures, and factors zero-padded to R columns/rows
    /// when min(out, in) < R.
    public static func analyze(
        _ pair: DeltaPair, module: DeltaModule, index: Int, options: DeltaAnalysisOptions
    ) throws -> (LayerDelta, ModuleFactors) {
        let (m, n) = (module.outFeatures, module.inFeatures)
        let k = min(m, n)
        let R = options.rank
        let kept = min(R, k)
        // NaN or Inf would reach LAPACK as "argument 5 had an illegal value": name the tensor instead.
        for (tensor, which) in [(pair.base, "base"), (pair.tuned, "tuned")] {
            if let bad = tensor.withUnsafeBufferPointer({ $0.firstIndex { !$0.isFinite } }) {
                let value = tensor.withUnsafeBufferPointer { $0[bad] }
                throw AnalysisError(tensor: module.name, "the \(which) model's weight holds \(value) at element \(bad) of \(module.shape) "
                                    + "(\(which == "base" ? "--base" : "--tuned")): a diverged or damaged model")
            }
        }
        let baseEnergy = pair.base.sumOfSquares
        var delta = pair.tuned
        delta.withUnsafeMutableBufferPointer { d in
            pair.base.withUnsafeBufferPointer { b in BLAS.axpy(count: d.count, alpha: -1, x: b.baseAddress!, y: d.baseAddress!) }
        }
        let deltaEnergy = delta.sumOfSquares

        let svdStart = DispatchTime.now().uptimeNanoseconds
        let svd: SVD
        let spectrum: Spectrum
        switch options.method {
        case .full:
            svd = try LAPACK.svd(delta)
            spectrum = Spectrum(complete: svd.s)
        case .randomized:
            let width = options.randomizedWidth(m, n)
            var rng = RandomStream(seed: options.seed, stream: 0xDE17A).split(UInt64(index))
            // Probes = R + p exactly, and all R + p values kept (rank: R, oversampling: p would drop p).
            svd = try LAPACK.randomizedSVD(delta, rank: width, oversampling: 0,
                                           powerIterations: options.powerIterations, using: &rng)
            spectrum = width == k ? Spectrum(complete: svd.s) : Spectrum(leading: svd.s, totalEnergy: deltaEnergy)
        }

        // B = U_R·diag(√σ) [m, R], A = diag(√σ)·V_Rᵀ [R, n]; columns/rows past min(R, k) stay zero.
        let roots = svd.s.prefix(kept).map { max($0, 0).squareRoot() }
        var b = Tensor(zeros: [m, R])
        var a = Tensor(zeros: [R, n])
        svd.u.withUnsafeBufferPointer { u in
            b.withUnsafeMutableBufferPointer { pb in
                let width = svd.u.shape[1]
                for i in 0..<m { for j in 0..<kept { pb[i * R + j] = u[i * width + j] * roots[j] } }
            }
        }
        svd.vt.withUnsafeBufferPointer { vt in
            a.withUnsafeMutableBufferPointer { pa in
                for j in 0..<kept { for c in 0..<n { pa[j * n + c] = roots[j] * vt[j * n + c] } }
            }
        }
        let svdSeconds = seconds(since: svdStart)

        // ‖ΔW − B·A‖_F, from the factors as written.
        var residual = delta
        residual.withUnsafeMutableBufferPointer { r in
            b.withUnsafeBufferPointer { pb in
                a.withUnsafeBufferPointer { pa in
                    BLAS.gemm(.none, .none, m: m, n: n, k: R, alpha: -1, a: pb.baseAddress!, lda: R,
                              b: pa.baseAddress!, ldb: n, beta: 1, c: r.baseAddress!, ldc: n)
                }
            }
        }
        let residualEnergy = residual.sumOfSquares

        let (deltaNorm, baseNorm) = (deltaEnergy.squareRoot(), baseEnergy.squareRoot())
        var ranks: [String: Int?] = [:]
        for f in options.energyFractions { ranks[DeltaAnalysis.key(f)] = .some(spectrum.rank(forEnergy: f)) }
        let layer = LayerDelta(
            name: module.name, module: module.path, layer: module.layer, kind: module.kind, category: module.kind.category,
            shape: module.shape, deltaNorm: deltaNorm, baseNorm: baseNorm,
            relativeChange: baseNorm > 0 ? deltaNorm / baseNorm : nil,
            singularValues: svd.s, spectrumComplete: spectrum.isComplete, totalEnergy: spectrum.totalEnergy,
            energyAtRank: spectrum.energyFraction(atRank: R), relativeErrorAtRank: spectrum.relativeError(atRank: R),
            measuredRelativeErrorAtRank: deltaEnergy > 0 ? (residualEnergy / deltaEnergy).squareRoot() : nil,
            rankForEnergy: ranks, effectiveRank: spectrum.effectiveRank,
            effectiveRankOfValues: spectrum.effectiveRankOfValues,
            ownerRank: 0, loadSeconds: 0, svdSeconds: svdSeconds)
        return (layer, ModuleFactors(path: module.path, a: a, b: b))
    }

    static func seconds(since start: UInt64) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }
}

/// A module's figures with its index, as one rank sends them to rank 0.
private struct IndexedLayer: Codable {
    var index: Int
    var layer: LayerDelta
}
