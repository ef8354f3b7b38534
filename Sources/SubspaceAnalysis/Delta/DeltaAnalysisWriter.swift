import Foundation
import SubspaceCore
import SubspaceDistributed

/// The files a ΔW analysis writes into its output folder.
public struct DeltaAnalysisFiles: Sendable {
    public var analysis: String
    public var factors: String
    public var report: String
    public var spectra: String
    public var cumulativeEnergy: String
    public var energyHeatmap: String

    public var all: [String] { [analysis, factors, report, spectra, cumulativeEnergy, energyHeatmap] }
    public var plots: [String] { [spectra, cumulativeEnergy, energyHeatmap] }

    public init(folder: String) {
        func path(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
        analysis = path("analysis.json")
        factors = path("factors.safetensors")
        report = path("report.md")
        spectra = path("spectra.svg")
        cumulativeEnergy = path("cumulative_energy.svg")
        energyHeatmap = path("energy_heatmap.svg")
    }
}

/// Writes and reads the outputs of a ΔW analysis: `analysis.json`, `factors.safetensors`,
/// `report.md` and three SVG plots, each written atomically.
public enum DeltaAnalysisWriter {
    /// Writes every output into `folder` (created if needed) and returns the paths.
    @discardableResult
    public static func write(_ outcome: DeltaAnalysisOutcome, to folder: String) throws -> DeltaAnalysisFiles {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let files = DeltaAnalysisFiles(folder: folder)
        let analysis = outcome.analysis

        var writer = SafetensorsWriter(metadata: [
            "format": "pt", "rank": String(analysis.rank), "base": analysis.base, "tuned": analysis.tuned,
            "method": analysis.method.rawValue,
            "layout": "<module>.lora_B [out, R] = U_R·diag(√σ), <module>.lora_A [R, in] = diag(√σ)·V_Rᵀ, lora_B·lora_A = ΔW_R",
        ])
        for f in outcome.factors {
            writer.add(f.path + ".lora_B", f.b)
            writer.add(f.path + ".lora_A", f.a)
        }
        try writer.write(to: files.factors)
        try writeText(try json(analysis), to: files.analysis)
        try writeText(DeltaPlots.spectra(analysis).xml, to: files.spectra)
        try writeText(DeltaPlots.cumulativeEnergy(analysis).xml, to: files.cumulativeEnergy)
        try writeText(DeltaPlots.energyHeatmap(analysis).xml, to: files.energyHeatmap)
        try writeText(markdown(analysis), to: files.report)
        return files
    }

    /// `analysis.json` as written (sorted keys, pretty-printed).
    public static func json(_ analysis: DeltaAnalysis) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(analysis), as: UTF8.self) + "\n"
    }

    /// Reads a folder's `analysis.json`.
    public static func read(folder: String) throws -> DeltaAnalysis {
        let path = DeltaAnalysisFiles(folder: folder).analysis
        do {
            return try JSONDecoder().decode(DeltaAnalysis.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch let error as DecodingError {
            throw AnalysisError(file: path, "not an analysis.json this version reads: \(error)")
        } catch {
            throw AnalysisError(file: path, "cannot read: \(FileSystemMessage.reason(error))")
        }
    }

    /// Whether `folder` holds a complete analysis at rank `rank` (for a pipeline skipping done stages).
    public static func isComplete(folder: String, rank: Int? = nil) -> Bool {
        let files = DeltaAnalysisFiles(folder: folder)
        guard files.all.allSatisfy({ FileManager.default.fileExists(atPath: $0) }),
              let analysis = try? read(folder: folder),
              (try? SafetensorsFile(path: files.factors)) != nil else { return false }
        return rank.map { $0 == analysis.rank } ?? true
    }

    static func writeText(_ text: String, to path: String) throws {
        try AtomicFile.write(Array(text.utf8), to: path)
    }

    // MARK: report.md

    /// The key table: energy at rank R (and the other pooled figures) by module kind and category.
    public static func kindTable(_ analysis: DeltaAnalysis) -> MarkdownTable {
        var table = MarkdownTable(["group", "modules", "mean energy@R", "min energy@R", "pooled energy@R", "mean error@R",
                                   "mean r50", "mean r90", "mean r99", "mean eff. rank", "‖ΔW‖_F", "mean ‖ΔW‖/‖W‖"])
        let s = analysis.summary
        for g in s.byKind + s.byCategory + [s.overall] {
            table.add([g.group, String(g.modules), f4(g.meanEnergyAtRank), f4(g.minEnergyAtRank), f4(g.pooledEnergyAtRank),
                       f4(g.meanRelativeErrorAtRank)]
                      + analysis.energyFractions.map { f1(g.meanRankForEnergy[DeltaAnalysis.key($0)].flatMap { $0 }) }
                      + [f1(g.meanEffectiveRank), e3(g.deltaNorm), e3(g.meanRelativeChange)])
        }
        return table
    }

    public static func markdown(_ analysis: DeltaAnalysis) -> String {
        let a = analysis
        var md = "# ΔW analysis\n\n"
        md += "- base: `\(a.base)`\n- tuned: `\(a.tuned)`\n"
        md += "- rank R = \(a.rank), method: \(a.method.rawValue)"
        if a.method == .randomized { md += " (oversampling p = \(a.oversampling ?? 0), power iterations q = \(a.powerIterations ?? 0), seed \(a.seed))" }
        md += "\n- \(a.layers.count) target modules, \(a.nonTarget.count) other tensors, \(a.worldSize) rank\(a.worldSize == 1 ? "" : "s")\n"
        md += String(format: "- SVD time %.3f s summed over modules; wall time %.3f s\n", a.timing.svdSecondsTotal, a.timing.wallSeconds)
        for w in a.warnings { md += "- warning: \(w)\n" }
        md += "\nEnergy at rank R is Σ_{i≤R} σᵢ² / Σ σᵢ²; error@R is ‖ΔW − ΔW_R‖_F / ‖ΔW‖_F = √(1 − energy); rK is the smallest rank keeping K% of the energy; "
        md += "the effective rank is exp of the entropy of pᵢ = σᵢ² / Σ σ².\n\n"
        md += "## By module kind\n\n" + kindTable(a).markdown + "\n"
        md += "![singular spectra](spectra.svg)\n\n![cumulative energy](cumulative_energy.svg)\n\n![energy at rank R](energy_heatmap.svg)\n\n"

        md += "## By depth\n\n"
        var depth = MarkdownTable(["layer", "modules", "mean energy@R", "pooled energy@R", "mean error@R", "mean r90", "mean eff. rank", "‖ΔW‖_F", "mean ‖ΔW‖/‖W‖"])
        for g in a.summary.byDepth {
            depth.add([String(g.layer ?? 0), String(g.modules), f4(g.meanEnergyAtRank), f4(g.pooledEnergyAtRank), f4(g.meanRelativeErrorAtRank),
                       f1(g.meanRankForEnergy[DeltaAnalysis.key(0.9)].flatMap { $0 }), f1(g.meanEffectiveRank), e3(g.deltaNorm), e3(g.meanRelativeChange)])
        }
        md += depth.markdown + "\n"

        md += "## Modules\n\n"
        var layers = MarkdownTable(["tensor", "shape", "‖ΔW‖_F", "‖ΔW‖/‖W‖", "σ₁", "energy@R", "error@R", "measured error@R"]
                                   + a.energyFractions.map { "r\(Ticks.label($0 * 100))" } + ["eff. rank", "SVD s", "rank"])
        for l in a.layers {
            layers.add([l.name, l.shape.map(String.init).joined(separator: "×"), e3(l.deltaNorm), e3(l.relativeChange),
                        e3(l.singularValues.first.map(Double.init)), f4(l.energyAtRank), f4(l.relativeErrorAtRank), f4(l.measuredRelativeErrorAtRank)]
                       + a.energyFractions.map { f in l.rankForEnergy[DeltaAnalysis.key(f)].flatMap { $0 }.map(String.init) ?? (l.spectrumComplete ? "—" : ">\(l.singularValues.count)") }
                       + [f1(l.effectiveRank), String(format: "%.4f", l.svdSeconds), String(l.ownerRank)])
        }
        md += layers.markdown + "\n"

        md += "## Tensors that are not LoRA targets\n\n"
        var others = MarkdownTable(["tensor", "shape", "‖ΔT‖_F", "‖T_base‖_F", "‖ΔT‖/‖T‖"])
        for t in a.nonTarget {
            others.add([t.name, t.shape.map(String.init).joined(separator: "×"), e3(t.deltaNorm), e3(t.baseNorm), e3(t.relativeChange)])
        }
        md += others.markdown + "\n"

        md += "## Work plan\n\nCost model: \(a.plan.costModel). max/mean cost = \(String(format: "%.4f", a.plan.maxOverMean)).\n\n"
        var plan = MarkdownTable(["rank", "modules", "cost", "share", "SVD s"])
        let total = a.plan.perRankCost.reduce(0, +)
        for r in 0..<a.plan.ranks {
            plan.add([String(r), String(a.plan.perRankModules[r]), e3(a.plan.perRankCost[r]),
                      String(format: "%.3f", total > 0 ? a.plan.perRankCost[r] / total : 0), String(format: "%.3f", a.plan.perRankSVDSeconds[r])])
        }
        md += plan.markdown
        return md
    }
}

/// A GitHub-flavoured Markdown table (also rendered to HTML by the comparison report).
public struct MarkdownTable: Sendable {
    public let header: [String]
    public private(set) var rows: [[String]] = []

    public init(_ header: [String]) { self.header = header }

    public mutating func add(_ row: [String]) {
        precondition(row.count == header.count, "row of \(row.count) cells for \(header.count) columns")
        rows.append(row)
    }

    public var markdown: String {
        func line(_ cells: [String]) -> String { "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n" }
        return line(header) + line(header.map { _ in "---" }) + rows.map(line).joined()
    }

    /// Columns padded to their widest cell, for a terminal.
    public var plainText: String {
        let widths = header.indices.map { c in ([header] + rows).map { $0[c].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { c, cell in
                let pad = String(repeating: " ", count: widths[c] - cell.count)
                return c == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n") + "\n"
    }

    public var html: String {
        var s = "<table>\n<thead><tr>" + header.map { "<th>\(escapeXML($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
        for row in rows { s += "<tr>" + row.map { "<td>\(escapeXML($0))</td>" }.joined() + "</tr>\n" }
        return s + "</tbody>\n</table>\n"
    }
}

/// Four decimals, or "—" when undefined.
func f4(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "—" }
/// One decimal, or "—".
func f1(_ x: Double?) -> String { x.map { String(format: "%.1f", $0) } ?? "—" }
/// Three significant digits in exponent form, or "—".
func e3(_ x: Double?) -> String { x.map { String(format: "%.3g", $0) } ?? "—" }

extension DeltaAnalyzer {
    /// The whole job for two models on disk, each an HF model folder or a Subspace checkpoint (or run)
    /// folder: every rank calls it; rank 0 writes the outputs into `output` and returns their paths with
    /// the outcome, the others return nil.
    public static func analyzeFolders(
        base: String, tuned: String, output: String, options: DeltaAnalysisOptions,
        communicator: any Communicator, onEvent: (DeltaAnalysisEvent) -> Void = { _ in }
    ) throws -> (outcome: DeltaAnalysisOutcome, files: DeltaAnalysisFiles)? {
        let source: any DeltaSource = WeightsDeltaSource.isHFFolder(base) && WeightsDeltaSource.isHFFolder(tuned)
            ? try HFFolderDeltaSource(base: base, tuned: tuned)
            : try WeightsDeltaSource(base: try WeightsDeltaSource.reader(base), tuned: try WeightsDeltaSource.reader(tuned))
        // The output folder is made before the SVDs, so an unusable one fails at once, not after them all.
        if communicator.rank == 0 {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: output, isDirectory: &isFolder), !isFolder.boolValue {
                throw AnalysisError(file: output, "--output is a file, not a folder")
            }
            do { try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true) } catch {
                throw AnalysisError(file: output, "--output: cannot create the folder: \(FileSystemMessage.reason(error))")
            }
            guard access(output, W_OK) == 0 else { throw AnalysisError(file: output, "--output: the folder is not writable") }
        }
        guard let outcome = try run(source: source, options: options, communicator: communicator, onEvent: onEvent) else { return nil }
        return (outcome, try DeltaAnalysisWriter.write(outcome, to: output))
    }
}
