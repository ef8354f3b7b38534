import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel

/// What the transfer reports as it goes; the library never prints.
public enum LoRAXEvent: Sendable {
    /// Rank 0 only: the module pairs and how they were split, before any work.
    case planned(WorkPlan, mappings: [ModuleMapping], unmapped: [UnmappedModule])
    /// On the owner: one target module done.
    case module(ModuleTransfer)
}

/// The result on rank 0: the report and the target adapter.
public struct LoRAXOutcome: Sendable {
    public var report: LoRAXReport
    public var adapter: LoRAAdapters
    public var targetConfig: ModelConfig
}

/// The inputs every rank opens: two HF model folders and a PEFT adapter trained on the first.
public struct LoRAXInputs: @unchecked Sendable {
    public let sourceFolder: String
    public let targetFolder: String
    public let adapterFolder: String
    public let sourceConfig: ModelConfig
    public let targetConfig: ModelConfig
    public let adapter: LoRAAdapters
    public let mappings: [ModuleMapping]
    public let unmapped: [UnmappedModule]
    let source: TensorFolder
    let target: TensorFolder
    let sourceTensors: [String: HFTensor]
    let targetTensors: [String: HFTensor]

    /// Opens and checks everything: both configs, the adapter against the source model, every weight a
    /// module pair needs (present, of the shape the config implies). Errors name the file and tensor.
    public init(sourceModel: String, targetModel: String, adapter adapterFolder: String) throws {
        sourceFolder = sourceModel
        targetFolder = targetModel
        self.adapterFolder = adapterFolder
        func config(_ folder: String) throws -> ModelConfig {
            let path = (folder as NSString).appendingPathComponent("config.json")
            guard FileManager.default.fileExists(atPath: path) else { throw AnalysisError(file: folder, "no config.json: not an HF model folder") }
            return try ModelConfig(hfConfigAt: path)
        }
        sourceConfig = try config(sourceModel)
        targetConfig = try config(targetModel)
        do {
            adapter = try PEFTAdapter.load(folder: adapterFolder, for: sourceConfig)
        } catch {
            throw AnalysisError(file: adapterFolder, "does not fit the source model \(sourceModel) (\(sourceConfig.family.rawValue), \(sourceConfig.layerCount) layers, width \(sourceConfig.hiddenSize)): \(error)")
        }
        let adapted = adapter.adapters.map(\.module.path)
        (mappings, unmapped) = ModuleMapper.map(source: sourceConfig, target: targetConfig, adapted: adapted)
        guard !mappings.isEmpty else {
            throw AnalysisError(file: adapterFolder, "none of its \(adapted.count) modules maps onto the target model \(targetModel) (\(targetConfig.family.rawValue), \(targetConfig.layerCount) layers): "
                                + unmapped.prefix(3).map { "\($0.module)\($0.role.map { " (\($0))" } ?? ""): \($0.reason)" }.joined(separator: "; "))
        }
        source = try TensorFolder(folder: sourceModel)
        target = try TensorFolder(folder: targetModel)
        sourceTensors = Dictionary(uniqueKeysWithValues: HFNaming(config: sourceConfig).tensors.map { ($0.name, $0) })
        targetTensors = Dictionary(uniqueKeysWithValues: HFNaming(config: targetConfig).tensors.map { ($0.name, $0) })
        for m in mappings {
            try check(m.target, in: target, targetTensors, folder: targetModel)
            for module in Set(m.sourceRoles.compactMap { $0?.module }) { try check(module, in: source, sourceTensors, folder: sourceModel) }
        }
    }

    private func check(_ module: String, in files: TensorFolder, _ tensors: [String: HFTensor], folder: String) throws {
        let name = module + ".weight"
        guard let hf = tensors[name] else { throw AnalysisError(tensor: name, file: folder, "is not a tensor its config.json implies") }
        guard files.contains(name) else { throw AnalysisError(tensor: name, file: folder, "missing, but its config.json implies it (shape \(hf.shape))") }
        let info = try files.info(name)
        guard info.shape == hf.shape else { throw AnalysisError(tensor: name, file: folder, "shape \(info.shape), but its config.json implies \(hf.shape)") }
        guard info.dtype.isFloatingPoint else { throw AnalysisError(tensor: name, file: folder, "is \(info.dtype.rawValue), not a floating-point tensor") }
    }

    /// A module's weight as [out, in].
    func weight(_ module: String, source isSource: Bool) throws -> Tensor {
        let name = module + ".weight"
        let stored = try (isSource ? source : target).tensor(name)
        return (isSource ? sourceTensors : targetTensors)[name]!.transposed ? stored.transposed() : stored
    }

    /// The source base rows of a mapping, stacked in the target's role order, [Σ rows, in].
    func sourceWeight(_ m: ModuleMapping) throws -> Tensor {
        var cache: [String: Tensor] = [:]
        let n = m.sourceShape[1]
        var values: [Float] = []
        values.reserveCapacity(m.sourceShape[0] * n)
        for (t, s) in zip(m.targetRoles, m.sourceRoles) {
            guard let s else { values += [Float](repeating: 0, count: t.rows * n); continue }
            if cache[s.module] == nil { cache[s.module] = try weight(s.module, source: true) }
            let w = cache[s.module]!
            values += w.view(offset: s.rowStart * n, shape: [s.rows, n]).scalars
        }
        return Tensor(shape: m.sourceShape, values: values)
    }

    /// The source update of a mapping as factors over its stacked rows: B [Σ rows, p·r] (the rows of
    /// each adapted role in the columns of its module), A [p·r, in], p the number of adapted source
    /// modules; scale·B·A is the source ΔW on those rows (zero rows for roles without an adapter).
    func sourceFactors(_ m: ModuleMapping) -> (b: Tensor, a: Tensor) {
        let modules = m.sourceModules
        let r = adapter.config.rank
        let (rows, n) = (m.sourceShape[0], m.sourceShape[1])
        let q = modules.count * r
        var b = Tensor(zeros: [rows, q])
        var aValues: [Float] = []
        for path in modules { aValues += adapter.factor(adapter.adapter(path: path)!, b: false).scalars }
        var offset = 0
        for ((t, s), adapted) in zip(zip(m.targetRoles, m.sourceRoles), m.adapted) {
            let count = s?.rows ?? t.rows
            defer { offset += count }
            guard adapted, let s, let j = modules.firstIndex(of: s.module) else { continue }
            let full = adapter.factor(adapter.adapter(path: s.module)!, b: true)   // [out_s, r]
            full.withUnsafeBufferPointer { src in
                b.withUnsafeMutableBufferPointer { dst in
                    for i in 0..<s.rows { for c in 0..<r { dst[(offset + i) * q + j * r + c] = src[(s.rowStart + i) * r + c] } }
                }
            }
        }
        return (b, Tensor(shape: [q, n], values: aValues))
    }

    /// The coordinate embedding of a mapping's output side: each role's leading rows.
    func outEmbedding(_ m: ModuleMapping) -> CoordinateEmbedding {
        var blocks: [CoordinateEmbedding.Block] = []
        var offset = 0
        for (t, s) in zip(m.targetRoles, m.sourceRoles) {
            let count = s?.rows ?? t.rows
            if s != nil { blocks.append(.init(sourceStart: offset, targetStart: t.rowStart, count: min(count, t.rows))) }
            offset += count
        }
        return CoordinateEmbedding(sourceDimension: m.sourceShape[0], targetDimension: m.targetShape[0], blocks: blocks)
    }
}

/// LoRA-X: carries a LoRA adapter trained on a source base model to a target base model without
/// training, through the target weights' singular subspaces, keeping the adapter's rank r and scale.
///
/// Every rank opens the inputs (memory-mapped) and the same module pairs; rank 0 plans which rank takes
/// which target module (longest-processing-time-first by SVD cost, the ΔW analysis's `WorkPlan`) and
/// broadcasts it; in rounds of one module per rank, each owner decomposes the source and target base
/// weights, measures φ_U and φ_V, projects the source factors and sends figures and rank-r factors to
/// rank 0. Every rank calls `run`; rank 0 gets the outcome, the others nil. An adapter of which no
/// module is transferred is an error on every rank.
public enum LoRAXTransfer {
    public static func run(
        inputs: LoRAXInputs, options: LoRAXOptions, communicator: any Communicator,
        onEvent: (LoRAXEvent) -> Void = { _ in }
    ) throws -> LoRAXOutcome? {
        if let problem = options.problems().first { throw AnalysisError(problem) }
        let start = DispatchTime.now().uptimeNanoseconds
        let (rank, size) = (communicator.rank, communicator.size)
        let isRoot = rank == 0
        let mappings = inputs.mappings
        let r = inputs.adapter.config.rank
        let costs = mappings.map { options.cost(source: $0.sourceShape, target: $0.targetShape,
                                               k: options.k(source: $0.sourceShape, target: $0.targetShape)) }
        var owners: [Int64] = isRoot ? WorkPlan.longestProcessingTimeFirst(costs: costs, ranks: size).owners.map(Int64.init) : []
        if size > 1 { try communicator.broadcast(&owners, root: 0) }
        let plan = WorkPlan(owners: owners.map { Int($0) }, costs: costs, ranks: size)
        if isRoot { onEvent(.planned(plan, mappings: mappings, unmapped: inputs.unmapped)) }

        var results = [ModuleTransfer?](repeating: nil, count: isRoot ? mappings.count : 0)
        var factors = [(b: Tensor, a: Tensor)?](repeating: nil, count: isRoot ? mappings.count : 0)
        let encoder = JSONEncoder()
        for round in 0..<plan.roundCount {
            var payload: [UInt8] = []
            var values: [Float] = []
            if round < plan.order[rank].count {
                let index = plan.order[rank][round]
                var (result, b, a) = try transfer(mappings[index], index: index, inputs: inputs, options: options)
                result.ownerRank = rank
                onEvent(.module(result))
                payload = Array(try encoder.encode(Indexed(index: index, module: result)))
                values = b.scalars + a.scalars
            }
            let gathered = size > 1 ? try communicator.gather(payload, root: 0) : [payload]
            let gatheredValues = size > 1 ? try communicator.gather(values, root: 0) : [values]
            guard isRoot, let gathered, let gatheredValues else { continue }
            for (bytes, flat) in zip(gathered, gatheredValues) where !bytes.isEmpty {
                let item = try JSONDecoder().decode(Indexed.self, from: Data(bytes))
                let m = mappings[item.index]
                let bCount = m.targetShape[0] * r
                results[item.index] = item.module
                factors[item.index] = (Tensor(shape: [m.targetShape[0], r], values: Array(flat[..<bCount])),
                                       Tensor(shape: [r, m.targetShape[1]], values: Array(flat[bCount...])))
            }
        }

        // Every rank learns the count, so an adapter with nothing transferred fails everywhere alike.
        var count: [Int64] = [isRoot ? Int64(results.filter { $0?.transferred == true }.count) : 0]
        if size > 1 { try communicator.broadcast(&count, root: 0) }
        guard count[0] > 0 else {
            throw AnalysisError(file: inputs.adapterFolder, "no module was transferred: all \(mappings.count) mapped modules are below the similarity threshold (\(options.thresholdRule)); "
                                + "see the per-module similarities with --threshold 0, or use a related target model")
        }
        guard isRoot else { return nil }
        let modules = results.map { $0! }
        let targetConfig = inputs.targetConfig
        let targets = targetModules(for: mappings.map(\.target), inputs: inputs)
        var loraConfig = inputs.adapter.config
        loraConfig.targets = targets
        let adapter = try LoRAAdapters(config: loraConfig, model: targetConfig)
        precondition(adapter.adapters.map(\.module.path) == mappings.map(\.target), "derived target_modules select other modules")
        for (i, a) in adapter.adapters.enumerated() {
            adapter.setFactor(a, b: true, factors[i]!.b)
            adapter.setFactor(a, b: false, factors[i]!.a)
        }
        let report = LoRAXReport(
            sourceModel: inputs.sourceFolder, targetModel: inputs.targetFolder, adapter: inputs.adapterFolder,
            sourceFamily: inputs.sourceConfig.family.rawValue, targetFamily: targetConfig.family.rawValue,
            rank: r, alpha: Double(loraConfig.alpha),
            targetModules: { switch targets { case .names(let n): n; case .pattern(let p): [p] } }(),
            subspaceRank: options.subspaceRank, threshold: options.threshold, thresholdRule: options.thresholdRule,
            method: options.method, worldSize: size, modules: modules, unmapped: inputs.unmapped,
            transferredCount: Int(count[0]), definitions: LoRAXReport.definitionTexts,
            wallSeconds: Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9, planMaxOverMean: plan.maxOverMean)
        return LoRAXOutcome(report: report, adapter: adapter, targetConfig: targetConfig)
    }

    /// target_modules for the target adapter that select exactly `paths`: the source adapter's own when
    /// they do, else the role names the paths end with (q_proj, attn.c_attn, …), else a pattern listing
    /// the paths.
    static func targetModules(for paths: [String], inputs: LoRAXInputs) -> LoRAConfig.Targets {
        let all = HFNaming(config: inputs.targetConfig).linearModules
        let wanted = Set(paths)
        func selects(_ t: LoRAConfig.Targets) -> Bool {
            var c = inputs.adapter.config
            c.targets = t
            return (try? c.select(from: all)).map { Set($0.map(\.path)) == wanted } ?? false
        }
        if selects(inputs.adapter.config.targets) { return inputs.adapter.config.targets }
        var names: [String] = []
        for p in paths {
            let parts = p.split(separator: ".")
            let name = inputs.targetConfig.family == .gpt2 ? parts.suffix(2).joined(separator: ".") : String(parts.last!)
            if !names.contains(name) { names.append(name) }
        }
        if selects(.names(names)) { return .names(names) }
        return .pattern(paths.map { NSRegularExpression.escapedPattern(for: $0) }.joined(separator: "|"))
    }

    /// One target module on this rank: subspaces, similarities, decision, rank-r factors of the target's
    /// shapes (zeros when not transferred).
    public static func transfer(
        _ m: ModuleMapping, index: Int, inputs: LoRAXInputs, options: LoRAXOptions
    ) throws -> (ModuleTransfer, b: Tensor, a: Tensor) {
        let start = DispatchTime.now().uptimeNanoseconds
        let r = inputs.adapter.config.rank
        let scale = Double(inputs.adapter.config.scale)
        let ws = try inputs.sourceWeight(m)
        let wt = try inputs.weight(m.target, source: false)
        let (bs, as_) = inputs.sourceFactors(m)
        let k = options.k(source: m.sourceShape, target: m.targetShape)
        let root = RandomStream(seed: options.seed, stream: 0x10AA).split(UInt64(index))
        var rngS = root.split(0), rngT = root.split(1)
        let sourceBasis = try SingularBasis.top(ws, k: k, method: options.method, oversampling: options.oversampling,
                                                powerIterations: options.powerIterations, rng: &rngS)
        let targetBasis = try SingularBasis.top(wt, k: k, method: options.method, oversampling: options.oversampling,
                                                powerIterations: options.powerIterations, rng: &rngT)
        let outE = inputs.outEmbedding(m)
        let inE = CoordinateEmbedding.leading(m.sourceShape[1], m.targetShape[1])
        let phiU = SubspaceSimilarity.phi(source: sourceBasis.u, target: targetBasis.u, embedding: outE)
        let phiV = SubspaceSimilarity.phi(source: sourceBasis.v, target: targetBasis.v, embedding: inE)
        let chanceU = SubspaceSimilarity.chance(k: k, sourceDimension: m.sourceShape[0], targetDimension: m.targetShape[0])
        let chanceV = SubspaceSimilarity.chance(k: k, sourceDimension: m.sourceShape[1], targetDimension: m.targetShape[1])
        let (tu, tv) = (options.threshold(chance: chanceU), options.threshold(chance: chanceV))

        let equal = m.shapesMatch
        var (bt, at) = equal
            ? LoRAProjection.project(b: bs, a: as_, target: targetBasis)
            : LoRAProjection.map(b: bs, a: as_, source: sourceBasis, target: targetBasis, outEmbedding: outE, inEmbedding: inE)
        var energyKept: Double?
        if bt.shape[1] != r {
            let t = try LoRAProjection.truncate(b: bt, a: at, rank: r)
            (bt, at, energyKept) = (t.b, t.a, t.energyKept)
        }
        let sourceNorm = LoRAProjection.squaredNorm(b: bs, a: as_).squareRoot() * abs(scale)
        let projectedNorm = LoRAProjection.squaredNorm(b: bt, a: at).squareRoot() * abs(scale)
        let projectedRatio = sourceNorm > 0 ? projectedNorm / sourceNorm : nil

        // 1e-6 of slack: with k = d on a side, chance and φ are 1 up to rounding and the default threshold is 1.
        var reasons: [String] = []
        if phiU < tu - 1e-6 { reasons.append(String(format: "φ_U %.4f < %.4f (chance %.4f)", phiU, tu, chanceU)) }
        if phiV < tv - 1e-6 { reasons.append(String(format: "φ_V %.4f < %.4f (chance %.4f)", phiV, tv, chanceV)) }
        let transferred = reasons.isEmpty
        if !transferred {
            bt = Tensor(zeros: [m.targetShape[0], r])
            at = Tensor(zeros: [r, m.targetShape[1]])
        }
        let result = ModuleTransfer(
            name: m.target, layer: m.layer, kind: m.kind, sources: m.sourceModules,
            roles: m.targetRoles.map(\.role), adaptedRoles: zip(m.targetRoles, m.adapted).filter(\.1).map(\.0.role),
            projection: equal ? "equal_shapes" : "mapped", sourceShape: m.sourceShape, targetShape: m.targetShape, k: k,
            phiU: phiU, phiV: phiV, chanceU: chanceU, chanceV: chanceV, chance: max(chanceU, chanceV),
            ratioU: phiU / chanceU, ratioV: phiV / chanceV, thresholdU: tu, thresholdV: tv,
            transferred: transferred, reason: transferred ? nil : reasons.joined(separator: "; "),
            normRatio: transferred ? projectedRatio : (sourceNorm > 0 ? 0 : nil), projectedNormRatio: projectedRatio,
            sourceNorm: sourceNorm, rankEnergyKept: energyKept, ownerRank: 0,
            seconds: Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        return (result, bt, at)
    }
}

/// A module's figures with its index, as one rank sends them to rank 0.
private struct Indexed: Codable {
    var index: Int
    var module: ModuleTransfer
}
