import Foundation
import SubspaceCore
import SubspaceAnalysis

/// The seed's three verdicts, with its thresholds.
public enum NullSpaceVerdict {
    /// ‖BX‖/‖X‖: < 0.1 good, 0.1–0.5 degraded, > 0.5 broken.
    public static func downRatio(_ v: Double) -> String { v < 0.1 ? "good" : v <= 0.5 ? "degraded" : "broken" }
    /// ‖ABX‖/‖X‖: > 1e-4 effective, 1e-6–1e-4 weak, < 1e-6 dead.
    public static func adapterRatio(_ v: Double) -> String { v > 1e-4 ? "effective" : v >= 1e-6 ? "weak" : "dead" }
    /// ‖ABX‖/‖output‖: > 1% significant, 0.1–1% small, < 0.1% negligible.
    public static func share(_ v: Double) -> String { v > 0.01 ? "significant" : v >= 0.001 ? "small" : "negligible" }

    public static let downMeaning: [String: String] = [
        "good": "the null-space property holds: inputs projected onto the down-projection stay small",
        "degraded": "the null-space property has degraded, but is still acceptable",
        "broken": "the null-space property is badly degraded",
    ]
    /// The seed's diagnoses (its "common problems" section), by failure.
    public static let downDiagnosis = "‖BX‖/‖X‖ large: the down-projection (PEFT lora_A, the seed's B) was probably updated in training — check that it is frozen (`subspace params --check-step` on the training config; the intended-frozen set comes from the variant) — or the data differ from the calibration distribution."
    public static let adapterDiagnosis = "‖ABX‖/‖X‖ tiny: the up-projection (PEFT lora_B, the seed's A) may be frozen by mistake, the learning rate too small, or training too short — check the trainable parameter count, raise the learning rate or train longer."
    public static let shareDiagnosis = "adapter contribution small: the rank may be too small, training too short or the learning rate too small — raise the rank, train more steps, tune the learning rate."
}

/// Averages over modules.
public struct VerificationSummary: Codable, Sendable {
    public var modules: Int
    public var xNorm: Double
    public var downXRatio: Double
    public var adapterXRatio: Double
    public var adapterOutputShare: Double
    public var downNorm: Double
    public var upNorm: Double
    public var residualNorm: Double
    public var downVerdict: String
    public var adapterVerdict: String
    public var shareVerdict: String
    public var diagnoses: [String]

    public init(_ m: [AdapterNorms]) {
        func mean(_ f: (AdapterNorms) -> Double) -> Double { m.isEmpty ? 0 : m.map(f).reduce(0, +) / Double(m.count) }
        modules = m.count
        xNorm = mean(\.xNorm)
        downXRatio = mean(\.downXRatio)
        adapterXRatio = mean(\.adapterXRatio)
        adapterOutputShare = mean(\.adapterOutputShare)
        downNorm = mean(\.downNorm)
        upNorm = mean(\.upNorm)
        residualNorm = mean(\.residualNorm)
        downVerdict = NullSpaceVerdict.downRatio(downXRatio)
        adapterVerdict = NullSpaceVerdict.adapterRatio(adapterXRatio)
        shareVerdict = NullSpaceVerdict.share(adapterOutputShare)
        diagnoses = []
        if downVerdict == "broken" { diagnoses.append(NullSpaceVerdict.downDiagnosis) }
        if adapterVerdict == "dead" { diagnoses.append(NullSpaceVerdict.adapterDiagnosis) }
        if shareVerdict == "negligible" { diagnoses.append(NullSpaceVerdict.shareDiagnosis) }
    }

    enum CodingKeys: String, CodingKey {
        case modules, diagnoses
        case xNorm = "x_norm", downXRatio = "down_x_ratio", adapterXRatio = "adapter_x_ratio", adapterOutputShare = "adapter_output_share"
        case downNorm = "down_norm", upNorm = "up_norm", residualNorm = "residual_norm"
        case downVerdict = "down_x_verdict", adapterVerdict = "adapter_x_verdict", shareVerdict = "adapter_output_share_verdict"
    }
}

/// verification.json and its Markdown / HTML renderings.
public struct VerificationReport: Codable, Sendable {
    public var adapter: String
    public var initialAdapter: String?
    public var model: String
    public var calibration: String
    public var sequences: Int
    public var sequenceLength: Int
    public var worldSize: Int
    public var variant: String?
    public var command: String?
    public var naming = "B = down-projection = PEFT lora_A [r, in] (the seed's BLinear); A = up-projection = PEFT lora_B [out, r] (the seed's ALinear) times alpha/r; W_res = the base the adapter sits on (W, or W − s·B₀·A₀ for a v1/v2 residual pair); activation norms are RMS over tokens"
    public var modules: [AdapterNorms]
    public var summary: VerificationSummary
    public var initialModules: [AdapterNorms]?
    public var initialSummary: VerificationSummary?
    public var frozenFactors: [FrozenFactorCheck]

    public init(adapter: String, initialAdapter: String?, model: String, calibration: String, sequences: Int, sequenceLength: Int,
                worldSize: Int, variant: String?, command: String?, modules: [AdapterNorms], initialModules: [AdapterNorms]?,
                frozenFactors: [FrozenFactorCheck]) {
        self.adapter = adapter
        self.initialAdapter = initialAdapter
        self.model = model
        self.calibration = calibration
        self.sequences = sequences
        self.sequenceLength = sequenceLength
        self.worldSize = worldSize
        self.variant = variant
        self.command = command
        self.modules = modules
        self.summary = VerificationSummary(modules)
        self.initialModules = initialModules
        self.initialSummary = initialModules.map(VerificationSummary.init)
        self.frozenFactors = frozenFactors
    }

    enum CodingKeys: String, CodingKey {
        case adapter, model, calibration, sequences, variant, command, naming, modules, summary
        case initialAdapter = "initial_adapter", sequenceLength = "sequence_length", worldSize = "world_size"
        case initialModules = "initial_modules", initialSummary = "initial_summary", frozenFactors = "frozen_factors"
    }

    public var frozenIntact: Bool? { frozenFactors.isEmpty ? nil : frozenFactors.allSatisfy { $0.changedElements == 0 } }

    public func write(to folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write([UInt8](try encoder.encode(self)), to: (folder as NSString).appendingPathComponent("verification.json"))
        try AtomicFile.write(Array(markdown.utf8), to: (folder as NSString).appendingPathComponent("report.md"))
        try AtomicFile.write(Array(html.utf8), to: (folder as NSString).appendingPathComponent("report.html"))
    }

    static func e(_ v: Double) -> String { String(format: "%.3e", v) }
    static func f(_ v: Double) -> String { String(format: "%.4f", v) }

    var moduleHeader: [String] { ["module", "‖X‖", "‖BX‖/‖X‖", "", "‖ABX‖/‖X‖", "", "‖ABX‖/‖out‖", "", "‖B‖_F", "‖A‖_F", "‖W_res‖_F"] }
    func moduleRows(_ m: [AdapterNorms]) -> [[String]] {
        m.map { x in
            [x.name, Self.f(x.xNorm), Self.e(x.downXRatio), NullSpaceVerdict.downRatio(x.downXRatio), Self.e(x.adapterXRatio),
             NullSpaceVerdict.adapterRatio(x.adapterXRatio), Self.e(x.adapterOutputShare), NullSpaceVerdict.share(x.adapterOutputShare),
             Self.f(x.downNorm), Self.f(x.upNorm), Self.f(x.residualNorm)]
        }
    }

    var summaryRows: [[String]] {
        var rows: [[String]] = []
        func add(_ label: String, _ s: VerificationSummary) {
            rows.append([label, Self.e(s.downXRatio), s.downVerdict, Self.e(s.adapterXRatio), s.adapterVerdict,
                         Self.e(s.adapterOutputShare), s.shareVerdict, Self.f(s.downNorm), Self.f(s.upNorm)])
        }
        if let i = initialSummary { add("initial", i) }
        add(initialSummary == nil ? "adapter" : "trained", summary)
        return rows
    }
    let summaryHeader = ["", "mean ‖BX‖/‖X‖", "verdict", "mean ‖ABX‖/‖X‖", "verdict", "mean ‖ABX‖/‖out‖", "verdict", "mean ‖B‖_F", "mean ‖A‖_F"]

    var comparisonRows: [[String]] {
        guard let initialModules else { return [] }
        return zip(initialModules, modules).map { i, t in
            let change = i.downXRatio > 0 ? (t.downXRatio - i.downXRatio) / i.downXRatio : 0
            return [t.name, Self.e(i.downXRatio), Self.e(t.downXRatio), String(format: "%+.1f%%", 100 * change),
                    Self.e(i.adapterXRatio), Self.e(t.adapterXRatio), Self.f(i.downNorm), Self.f(t.downNorm), Self.f(i.upNorm), Self.f(t.upNorm)]
        }
    }
    let comparisonHeader = ["module", "‖BX‖/‖X‖ init", "trained", "change", "‖ABX‖/‖X‖ init", "trained", "‖B‖_F init", "trained", "‖A‖_F init", "trained"]

    /// Plain sentences: what the figures say.
    public var findings: [String] {
        var out: [String] = []
        let s = summary
        out.append("‖BX‖/‖X‖ averages \(Self.e(s.downXRatio)): \(s.downVerdict) — \(NullSpaceVerdict.downMeaning[s.downVerdict]!).")
        out.append("‖ABX‖/‖X‖ averages \(Self.e(s.adapterXRatio)): \(s.adapterVerdict)" +
                   (s.adapterVerdict == "effective" ? " — the adapter learned an update of meaningful size." : "."))
        out.append("The adapter makes \(String(format: "%.3f", 100 * s.adapterOutputShare))% of the layers' output on average: \(s.shareVerdict).")
        if let i = initialSummary {
            let change = i.downXRatio > 0 ? (s.downXRatio - i.downXRatio) / i.downXRatio : 0
            out.append("From initialisation to trained: ‖BX‖/‖X‖ \(Self.e(i.downXRatio)) → \(Self.e(s.downXRatio)) (\(String(format: "%+.1f%%", 100 * change)))" +
                       (abs(change) <= 0.1 ? ", kept close as the seed expects" : ", changed by more than 10%") +
                       "; ‖ABX‖/‖X‖ \(Self.e(i.adapterXRatio)) → \(Self.e(s.adapterXRatio)); ‖A‖_F \(Self.f(i.upNorm)) → \(Self.f(s.upNorm)).")
            if i.adapterVerdict == "dead" { out.append("At initialisation ‖ABX‖/‖X‖ is \(Self.e(i.adapterXRatio)): expected, since the up-projection starts at zero (null variant).") }
        }
        if let intact = frozenIntact {
            let changed = frozenFactors.filter { $0.changedElements > 0 }
            out.append(intact ? "The variant's frozen factor (\(frozenFactors.first!.factor)) is bit-identical to its initial value in all \(frozenFactors.count) modules."
                : "The variant's frozen factor changed in \(changed.count) of \(frozenFactors.count) modules (e.g. \(changed[0].module), \(changed[0].changedElements) elements, largest change \(Self.e(changed[0].maxChange))): it was not frozen.")
        }
        out += s.diagnoses.map { "Diagnosis: " + $0 }
        return out
    }

    static func mdTable(_ header: [String], _ rows: [[String]]) -> String {
        "| " + header.joined(separator: " | ") + " |\n|" + header.map { _ in " --- |" }.joined() + "\n"
            + rows.map { "| " + $0.joined(separator: " | ") + " |" }.joined(separator: "\n") + "\n"
    }

    public var markdown: String {
        var s = "# LoRA-Null verification\n\n"
        if let command { s += "`\(command)`\n\n" }
        s += "- Adapter: `\(adapter)`" + (variant.map { " (variant \($0))" } ?? "") + "\n"
        if let initialAdapter { s += "- Initial adapter: `\(initialAdapter)`\n" }
        s += "- Base model: `\(model)`\n- Data: \(calibration), \(sequences) sequences × \(sequenceLength) tokens, \(worldSize) rank\(worldSize == 1 ? "" : "s")\n"
        s += "- Letters: \(naming)\n\n## Findings\n\n" + findings.map { "- " + $0 }.joined(separator: "\n") + "\n\n"
        s += "## Summary (averages over \(summary.modules) modules)\n\n" + Self.mdTable(summaryHeader, summaryRows) + "\n"
        s += "Thresholds (the seed's): ‖BX‖/‖X‖ < 0.1 good, 0.1–0.5 degraded, > 0.5 broken; ‖ABX‖/‖X‖ > 1e-4 effective, 1e-6–1e-4 weak, < 1e-6 dead; ‖ABX‖/‖output‖ > 1% significant, 0.1–1% small, < 0.1% negligible.\n\n"
        if initialModules != nil { s += "## Initial vs trained\n\n" + Self.mdTable(comparisonHeader, comparisonRows) + "\n" }
        s += "## Modules\n\n" + Self.mdTable(moduleHeader, moduleRows(modules))
        return s
    }

    func plot(_ title: String, _ y: String, _ value: (AdapterNorms) -> Double, thresholds: [(Double, String)]) -> String {
        var chart = LineChart(title: title, xLabel: "module (layer order)", yLabel: y)
        chart.logY = true
        if let initialModules {
            chart.series.append(.init(label: "initial", color: Palette.color(0), points: initialModules.enumerated().map { (Double($0), value($1)) }, dash: "6 4", markers: true))
        }
        chart.series.append(.init(label: initialModules == nil ? "adapter" : "trained", color: Palette.color(1),
                                  points: modules.enumerated().map { (Double($0), value($1)) }, markers: true))
        chart.horizontalLines = thresholds.map { (y: $0.0, label: $0.1) }
        return chart.render().element
    }

    public var html: String {
        func esc(_ s: String) -> String { escapeXML(s) }
        func table(_ header: [String], _ rows: [[String]]) -> String {
            "<table><thead><tr>" + header.map { "<th>\(esc($0))</th>" }.joined() + "</tr></thead><tbody>"
                + rows.map { "<tr>" + $0.map { "<td>\(esc($0))</td>" }.joined() + "</tr>" }.joined(separator: "\n") + "</tbody></table>\n"
        }
        var b = "<h1>LoRA-Null verification</h1>\n"
        if let command { b += "<p><code>\(esc(command))</code></p>\n" }
        b += "<ul><li>Adapter: \(esc(adapter))\(variant.map { " (variant \(esc($0)))" } ?? "")</li>"
        if let initialAdapter { b += "<li>Initial adapter: \(esc(initialAdapter))</li>" }
        b += "<li>Base model: \(esc(model))</li><li>Data: \(esc(calibration)), \(sequences) sequences × \(sequenceLength) tokens, \(worldSize) ranks</li>"
        b += "<li>Letters: \(esc(naming))</li></ul>\n<h2>Findings</h2><ul>" + findings.map { "<li>\(esc($0))</li>" }.joined() + "</ul>\n"
        b += "<h2>Summary</h2>\n" + table(summaryHeader, summaryRows)
        b += "<h2>Per-module ratios</h2>\n"
        b += plot("‖BX‖/‖X‖ per module", "‖BX‖/‖X‖", \.downXRatio, thresholds: [(0.1, "0.1 good"), (0.5, "0.5 broken")])
        b += plot("‖ABX‖/‖X‖ per module", "‖ABX‖/‖X‖", \.adapterXRatio, thresholds: [(1e-4, "1e-4 effective"), (1e-6, "1e-6 dead")])
        b += plot("‖ABX‖/‖output‖ per module", "share of output", \.adapterOutputShare, thresholds: [(0.01, "1%"), (0.001, "0.1%")])
        if initialModules != nil { b += "<h2>Initial vs trained</h2>\n" + table(comparisonHeader, comparisonRows) }
        b += "<h2>Modules</h2>\n" + table(moduleHeader, moduleRows(modules))
        return HTMLPage.document(title: "LoRA-Null verification", body: b)
    }
}
