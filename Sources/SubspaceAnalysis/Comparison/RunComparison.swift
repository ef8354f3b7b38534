import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel

/// A LoRA run to compare against the teacher.
public struct StudentRun: Sendable, Equatable {
    public var name: String
    /// The run folder: `metrics.jsonl` and `final/` (a PEFT adapter folder).
    public var folder: String

    public init(name: String, folder: String) {
        self.name = name
        self.folder = folder
    }
}

public struct ComparisonOptions: Sendable {
    /// The base model's HF folder.
    public var base: String
    /// The full fine-tuning run folder: `metrics.jsonl` and `final/` (an HF model folder).
    public var teacher: String
    public var students: [StudentRun]
    /// The validation loss "steps to target" counts to; nil: the teacher's final val_loss × `targetFactor`.
    public var targetLoss: Double?
    public var targetFactor: Double
    /// A `delta-svd` output folder whose key table and plots the report includes.
    public var analysis: String?

    public init(base: String, teacher: String, students: [StudentRun], targetLoss: Double? = nil,
                targetFactor: Double = 1.05, analysis: String? = nil) {
        self.base = base
        self.teacher = teacher
        self.students = students
        self.targetLoss = targetLoss
        self.targetFactor = targetFactor
        self.analysis = analysis
    }
}

/// One run's figures.
public struct RunSummary: Codable, Sendable {
    public var name: String
    /// "teacher" or "student".
    public var role: String
    public var folder: String
    /// LoRA r, lora_alpha and the scale on B·A (students only).
    public var loraRank: Int?
    public var loraAlpha: Double?
    public var loraScale: Double?
    /// Training loss of step 1.
    public var initialLoss: Double?
    public var finalTrainLoss: Double?
    public var finalValLoss: Double?
    /// Of the last evaluation that measured it.
    public var exactMatch: Double?
    public var exactMatchExamples: Int?
    /// First evaluation step with val_loss ≤ the target; null if never reached.
    public var stepsToTarget: Int?
    public var lastStep: Int?
    /// ‖ΔW_teacher − ΔW_student‖_F / ‖ΔW_teacher‖_F over the modules the student adapts (students only).
    public var distance: Double?
    /// ⟨ΔW_teacher, ΔW_student⟩ / (‖ΔW_teacher‖_F ‖ΔW_student‖_F) over the same modules.
    public var cosine: Double?
    /// ‖ΔW_student‖_F / ‖ΔW_teacher‖_F over the same modules.
    public var normRatio: Double?
    public var adaptedModules: Int?
    /// [step, loss] pairs.
    public var trainCurve: [[Double]]
    /// [step, val_loss] pairs.
    public var valCurve: [[Double]]

    enum CodingKeys: String, CodingKey {
        case name, role, folder, distance, cosine
        case loraRank = "lora_rank"
        case loraAlpha = "lora_alpha"
        case loraScale = "lora_scale"
        case initialLoss = "initial_loss"
        case finalTrainLoss = "final_train_loss"
        case finalValLoss = "final_val_loss"
        case exactMatch = "exact_match"
        case exactMatchExamples = "exact_match_examples"
        case stepsToTarget = "steps_to_target"
        case lastStep = "last_step"
        case normRatio = "norm_ratio"
        case adaptedModules = "adapted_modules"
        case trainCurve = "train_curve"
        case valCurve = "val_curve"
    }
}

/// One student's distance to the teacher on one module.
public struct ModuleDistance: Codable, Sendable {
    public var student: String
    public var module: String
    public var layer: Int
    public var kind: ModuleKind
    public var teacherNorm: Double
    public var studentNorm: Double
    /// ‖ΔW_teacher − ΔW_student‖_F / ‖ΔW_teacher‖_F.
    public var distance: Double?
    public var cosine: Double?

    enum CodingKeys: String, CodingKey {
        case student, module, layer, kind, distance, cosine
        case teacherNorm = "teacher_norm"
        case studentNorm = "student_norm"
    }
}

/// The distance pooled over one transformer layer's adapted modules.
public struct LayerDistance: Codable, Sendable {
    public var student: String
    public var layer: Int
    public var distance: Double?
}

/// Everything `comparison.json` holds.
public struct Comparison: Codable, Sendable {
    public var base: String
    public var teacher: String
    public var targetValLoss: Double?
    /// How the target was chosen, in words.
    public var targetRule: String
    /// Teacher first, then the students (by LoRA rank when their ranks differ).
    public var runs: [RunSummary]
    public var distances: [ModuleDistance]
    public var layerDistances: [LayerDistance]
    /// The students' distinct LoRA ranks, ascending (more than one: a rank study).
    public var studentRanks: [Int]
    public var analysis: String?
    public var definitions: [String: String]

    enum CodingKeys: String, CodingKey {
        case base, teacher, runs, distances, analysis, definitions
        case targetValLoss = "target_val_loss"
        case targetRule = "target_rule"
        case layerDistances = "layer_distances"
        case studentRanks = "student_ranks"
    }

    public var students: [RunSummary] { runs.filter { $0.role == "student" } }
}

/// Teacher against students: losses, accuracy, steps to a target, and how close each student's
/// ΔW = scale·B·A comes to the teacher's ΔW.
public enum RunComparison {
    /// Computes the comparison. With a communicator, every rank calls it and the modules' distances are
    /// split over the ranks (each owner reads only its modules' teacher weights); every rank gets the result.
    /// `--analysis` must be the delta-svd of this base and this teacher: its analysis.json names the
    /// folders it read, compared here as absolute paths with links resolved.
    static func checkAnalysis(_ folder: String, base: String, tuned: String) throws {
        let analysis = try DeltaAnalysisWriter.read(folder: folder)
        func resolved(_ path: String) -> String {
            let expanded = (path as NSString).expandingTildeInPath
            let absolute = expanded.hasPrefix("/") ? expanded : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(expanded)
            return ((absolute as NSString).standardizingPath as NSString).resolvingSymlinksInPath
        }
        /// The same model: the same folder, or folders whose config.json and tensor files are byte for byte equal.
        func same(_ a: String, _ b: String) -> Bool {
            if resolved(a) == resolved(b) { return true }
            let files = FileManager.default
            func names(_ folder: String) -> [String] {
                ((try? files.contentsOfDirectory(atPath: folder)) ?? []).filter { $0 == "config.json" || $0.hasSuffix(".safetensors") }.sorted()
            }
            let (na, nb) = (names(a), names(b))
            guard !na.isEmpty, na == nb else { return false }
            return na.allSatisfy { name in
                let (pa, pb) = ((a as NSString).appendingPathComponent(name), (b as NSString).appendingPathComponent(name))
                guard let da = try? Data(contentsOf: URL(fileURLWithPath: pa), options: .alwaysMapped),
                      let db = try? Data(contentsOf: URL(fileURLWithPath: pb), options: .alwaysMapped) else { return false }
                return da == db
            }
        }
        /// A training run's checkpoint (…/checkpoints/step-N) or run folder stands for that run's final model: delta-svd
        /// reads a teacher's ΔW straight from its checkpoint shards, which hold the weights final/ was exported from.
        func sameRun(_ checkpoint: String, _ final: String) -> Bool {
            var run = resolved(checkpoint)
            if (run as NSString).lastPathComponent.hasPrefix("step-"),
               ((run as NSString).deletingLastPathComponent as NSString).lastPathComponent == "checkpoints" {
                run = ((run as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
            }
            return resolved((run as NSString).appendingPathComponent("final")) == resolved(final)
        }
        var wrong: [String] = []
        if !same(analysis.base, base) { wrong.append("base \(analysis.base) (this comparison's --base is \(base))") }
        if !same(analysis.tuned, tuned) && !sameRun(analysis.tuned, tuned) { wrong.append("tuned \(analysis.tuned) (this comparison's teacher model is \(tuned))") }
        guard wrong.isEmpty else {
            throw AnalysisError(file: folder, "--analysis is the delta-svd of other models: " + wrong.joined(separator: " and ")
                                + "; run delta-svd --base \(base) --tuned \(tuned), or leave --analysis out")
        }
    }

    public static func compare(_ options: ComparisonOptions, communicator: (any Communicator)? = nil) throws -> Comparison {
        guard !options.students.isEmpty else { throw AnalysisError("no students to compare") }
        let names = options.students.map(\.name) + ["teacher"]
        if let dup = Set(names.filter { n in names.filter { $0 == n }.count > 1 }).first {
            throw AnalysisError("run name '\(dup)' is used twice")
        }
        func path(_ folder: String, _ name: String) -> String { (folder as NSString).appendingPathComponent(name) }

        if let folder = options.analysis { try checkAnalysis(folder, base: options.base, tuned: path(options.teacher, "final")) }
        let teacherMetrics = try RunMetrics.read(path: path(options.teacher, "metrics.jsonl"))
        let source = try HFFolderDeltaSource(base: options.base, tuned: path(options.teacher, "final"))
        let config = source.config
        var adapters: [LoRAAdapters] = []
        var studentMetrics: [RunMetrics] = []
        for s in options.students {
            studentMetrics.append(try RunMetrics.read(path: path(s.folder, "metrics.jsonl")))
            do {
                adapters.append(try PEFTAdapter.load(folder: path(s.folder, "final"), for: config))
            } catch {
                throw AnalysisError(file: path(s.folder, "final"), "student '\(s.name)': cannot load the adapter for the base model: \(error)")
            }
        }

        let target: Double?
        let rule: String
        if let given = options.targetLoss {
            (target, rule) = (given, "given (--target-loss \(given))")
        } else if let teacherFinal = teacherMetrics.finalValLoss {
            (target, rule) = (teacherFinal * options.targetFactor, "the teacher's final val_loss × \(options.targetFactor) (default)")
        } else {
            (target, rule) = (nil, "none: the teacher's metrics hold no evaluation and no --target-loss was given")
        }

        // Modules any student adapts, in model order; each rank takes a share by size.
        let modules = source.modules.filter { m in adapters.contains { $0.adapter(path: m.path) != nil } }
        let size = communicator?.size ?? 1, rank = communicator?.rank ?? 0
        let plan = WorkPlan.longestProcessingTimeFirst(costs: modules.map { Double($0.outFeatures * $0.inFeatures) }, ranks: size)
        // Per (module, student): ‖ΔW_t − ΔW_s‖², ‖ΔW_t‖², ‖ΔW_s‖², ⟨ΔW_t, ΔW_s⟩.
        let S = adapters.count
        var sums = [Double](repeating: 0, count: modules.count * S * 4)
        for i in plan.order[rank] {
            let pair = try source.pair(modules[i])
            let teacherDelta = pair.tuned - pair.base
            for (s, lora) in adapters.enumerated() {
                guard let adapter = lora.adapter(path: modules[i].path) else { continue }
                let studentDelta = BLAS.matmul(lora.factor(adapter, b: true), lora.factor(adapter, b: false),
                                               alpha: lora.config.scale)
                let f = frobenius(teacherDelta, studentDelta)
                let at = (i * S + s) * 4
                sums[at] = f.difference; sums[at + 1] = f.first; sums[at + 2] = f.second; sums[at + 3] = f.inner
            }
        }
        if let communicator, size > 1 { try communicator.allReduce(&sums, op: .sum) }

        var distances: [ModuleDistance] = []
        var layerDistances: [LayerDistance] = []
        var runs: [RunSummary] = [summary(name: "teacher", role: "teacher", folder: options.teacher, metrics: teacherMetrics, target: target)]
        for (s, student) in options.students.enumerated() {
            let lora = adapters[s]
            var total = (difference: 0.0, first: 0.0, second: 0.0, inner: 0.0)
            var byLayer: [Int: (Double, Double)] = [:]
            var adapted = 0
            for (i, m) in modules.enumerated() where lora.adapter(path: m.path) != nil {
                let at = (i * S + s) * 4
                let (d, t, st, inner) = (sums[at], sums[at + 1], sums[at + 2], sums[at + 3])
                distances.append(ModuleDistance(student: student.name, module: m.path, layer: m.layer, kind: m.kind,
                                                teacherNorm: t.squareRoot(), studentNorm: st.squareRoot(),
                                                distance: t > 0 ? (d / t).squareRoot() : nil,
                                                cosine: t > 0 && st > 0 ? inner / (t * st).squareRoot() : nil))
                total.difference += d; total.first += t; total.second += st; total.inner += inner
                byLayer[m.layer, default: (0, 0)].0 += d
                byLayer[m.layer, default: (0, 0)].1 += t
                adapted += 1
            }
            for (layer, v) in byLayer.sorted(by: { $0.key < $1.key }) {
                layerDistances.append(LayerDistance(student: student.name, layer: layer, distance: v.1 > 0 ? (v.0 / v.1).squareRoot() : nil))
            }
            var run = summary(name: student.name, role: "student", folder: student.folder, metrics: studentMetrics[s], target: target)
            run.loraRank = lora.config.rank
            run.loraAlpha = Double(lora.config.alpha)
            run.loraScale = Double(lora.config.scale)
            run.distance = total.first > 0 ? (total.difference / total.first).squareRoot() : nil
            run.cosine = total.first > 0 && total.second > 0 ? total.inner / (total.first * total.second).squareRoot() : nil
            run.normRatio = total.first > 0 ? (total.second / total.first).squareRoot() : nil
            run.adaptedModules = adapted
            runs.append(run)
        }
        let ranks = Set(adapters.map(\.config.rank)).sorted()
        if ranks.count > 1 {
            let order = Dictionary(uniqueKeysWithValues: options.students.enumerated().map { ($1.name, $0) })
            runs = [runs[0]] + runs.dropFirst().sorted { ($0.loraRank ?? 0, order[$0.name]!) < ($1.loraRank ?? 0, order[$1.name]!) }
        }
        return Comparison(
            base: options.base, teacher: options.teacher, targetValLoss: target, targetRule: rule, runs: runs,
            distances: distances, layerDistances: layerDistances, studentRanks: ranks, analysis: options.analysis,
            definitions: [
                "initial_loss": "training loss of the first logged step (step 1)",
                "final_val_loss": "val_loss of the last evaluation",
                "exact_match": "exact_match of the last evaluation that measured it",
                "steps_to_target": "first evaluation step whose val_loss ≤ target_val_loss (null: never reached)",
                "distance": "‖ΔW_teacher − ΔW_student‖_F / ‖ΔW_teacher‖_F, ΔW_student = scale·B·A, pooled over the modules the student adapts",
                "cosine": "⟨ΔW_teacher, ΔW_student⟩_F / (‖ΔW_teacher‖_F ‖ΔW_student‖_F) over the same modules",
                "norm_ratio": "‖ΔW_student‖_F / ‖ΔW_teacher‖_F over the same modules",
            ])
    }

    static func summary(name: String, role: String, folder: String, metrics: RunMetrics, target: Double?) -> RunSummary {
        RunSummary(name: name, role: role, folder: folder, loraRank: nil, loraAlpha: nil, loraScale: nil,
                   initialLoss: metrics.initialLoss, finalTrainLoss: metrics.finalTrainLoss, finalValLoss: metrics.finalValLoss,
                   exactMatch: metrics.finalExactMatch?.exactMatch, exactMatchExamples: metrics.finalExactMatch?.exactMatchExamples,
                   stepsToTarget: target.flatMap { metrics.stepsToReach($0) }, lastStep: metrics.lastStep,
                   distance: nil, cosine: nil, normRatio: nil, adaptedModules: nil,
                   trainCurve: metrics.steps.map { [Double($0.step), $0.loss] },
                   valCurve: metrics.evaluations.map { [Double($0.step), $0.valLoss] })
    }

    /// ‖a − b‖², ‖a‖², ‖b‖² and ⟨a, b⟩ in double precision.
    static func frobenius(_ a: Tensor, _ b: Tensor) -> (difference: Double, first: Double, second: Double, inner: Double) {
        precondition(a.shape == b.shape, "shapes differ: \(a.shape) vs \(b.shape)")
        return a.withUnsafeBufferPointer { x in
            b.withUnsafeBufferPointer { y in
                var r = (difference: 0.0, first: 0.0, second: 0.0, inner: 0.0)
                for i in 0..<x.count {
                    let (u, v) = (Double(x[i]), Double(y[i]))
                    r.difference += (u - v) * (u - v)
                    r.first += u * u
                    r.second += v * v
                    r.inner += u * v
                }
                return r
            }
        }
    }
}
