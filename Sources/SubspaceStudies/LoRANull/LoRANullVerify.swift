import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel
import SubspaceAnalysis

/// `subspace lora-null verify`: the seed's checks of an adapter on held-out calibration data — ‖X‖,
/// ‖BX‖, ‖ABX‖, ‖W_res·X‖, ‖output‖ per module and averaged, the ratios with the seed's thresholds as
/// verdicts and its diagnosis for each failure — and, with `--initial`, the same for the adapter as built
/// and the comparison of the two. Writes verification.json, report.md and report.html (inline SVG).
public enum LoRANullVerify {
    public struct Options: Sendable {
        public var model: String
        public var adapter: String
        public var initial: String?
        public var calibration: String
        public var calibrationOptions = CalibrationSet.Options(split: .validation)
        public var batch = 8
        public var output: String

        public init(model: String, adapter: String, calibration: String, output: String) {
            self.model = model
            self.adapter = adapter
            self.calibration = calibration
            self.output = output
        }
    }

    /// Measures one adapter folder on `data` (every rank; results on every rank).
    public static func measure(model folder: String, adapter: String, data: CalibrationSet, batch: Int,
                               communicator: any Communicator) throws -> (norms: [AdapterNorms], manifest: LoRANullManifest?, folder: LoRANull.Folder) {
        let model = try HFCheckpoint.load(folder: folder)
        guard data.sequenceLength <= model.config.maxPositions else {
            throw AnalysisError(file: data.source, "calibration sequences of \(data.sequenceLength) tokens are longer than the model's context of \(model.config.maxPositions) positions")
        }
        let adapterFolder = try LoRANull.Folder(folder: adapter, model: model.config)
        let meter = AdapterNormMeter(model: model, folder: adapterFolder)
        model.adapters = adapterFolder.loaded
        model.linearInputObserver = meter
        let mine = data.slice(rank: communicator.rank, size: communicator.size)
        data.forEachBatch(mine, batch: batch) { ids, B in model.forward(ids: ids, B: B, T: data.sequenceLength) }
        model.linearInputObserver = nil
        return (try meter.finish(communicator: communicator), adapterFolder.manifest, adapterFolder)
    }

    @discardableResult
    public static func run(_ o: Options, communicator: any Communicator, command: String? = nil,
                           log: (String) -> Void = { _ in }) throws -> VerificationReport {
        guard o.batch >= 1 else { throw AnalysisError("--batch must be ≥ 1, got \(o.batch)") }
        let config = try ModelConfig(hfConfigAt: (o.model as NSString).appendingPathComponent("config.json"))
        let data = try CalibrationSet.load(o.calibration, options: o.calibrationOptions, model: config)
        log("verification data: \(data.count) sequences of \(data.sequenceLength) tokens from \(data.source)")
        let trained = try measure(model: o.model, adapter: o.adapter, data: data, batch: o.batch, communicator: communicator)
        var initial: (norms: [AdapterNorms], manifest: LoRANullManifest?, folder: LoRANull.Folder)? = nil
        if let i = o.initial {
            initial = try measure(model: o.model, adapter: i, data: data, batch: o.batch, communicator: communicator)
            guard initial!.norms.map(\.name) == trained.norms.map(\.name) else {
                throw AnalysisError(file: i, "the initial adapter targets other modules than \(o.adapter)")
            }
        }
        var frozenCheck: [FrozenFactorCheck] = []
        if let initial, let variant = trained.manifest?.variant ?? initial.manifest?.variant {
            for factor in variant.frozenFactors {
                for (a, b) in zip(initial.folder.loaded.adapters, trained.folder.loaded.adapters) {
                    let x = factor == .down ? initial.folder.parts(a).down : initial.folder.parts(a).up
                    let y = factor == .down ? trained.folder.parts(b).down : trained.folder.parts(b).up
                    var changed = 0, largest: Float = 0
                    for (u, v) in zip(x.scalars, y.scalars) where u.bitPattern != v.bitPattern { changed += 1; largest = max(largest, abs(u - v)) }
                    frozenCheck.append(FrozenFactorCheck(module: a.module.path, factor: factor.rawValue, changedElements: changed, maxChange: Double(largest)))
                }
            }
        }
        let report = VerificationReport(
            adapter: o.adapter, initialAdapter: o.initial, model: o.model, calibration: data.source,
            sequences: data.count, sequenceLength: data.sequenceLength, worldSize: communicator.size,
            variant: (trained.manifest ?? initial?.manifest)?.variant.rawValue, command: command,
            modules: trained.norms, initialModules: initial?.norms, frozenFactors: frozenCheck)
        if communicator.rank == 0 { try report.write(to: o.output) }
        try communicator.barrier()
        return report
    }
}

/// One module's frozen factor compared bit for bit between the initial and the trained adapter.
public struct FrozenFactorCheck: Codable, Sendable {
    public var module: String
    public var factor: String
    public var changedElements: Int
    public var maxChange: Double
    enum CodingKeys: String, CodingKey { case module, factor, changedElements = "changed_elements", maxChange = "max_change" }
}
