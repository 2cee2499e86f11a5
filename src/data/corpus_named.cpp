// Named corpora from Debian packages (moe data --corpus): readers, their cleaning, and
// the deduplication of the documentation and dictionary inputs.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>
#include <stdexcept>
#include <unordered_set>

#include "data/corpus.h"
#include "data/corpus_util.h"
#include "data/sha256.h"
#include "io/files.h"

namespace fs = std::filesystem;

namespace moe {

// ---------------------------------------------------------------- cleaning

std::string clean_gutenberg(std::string_view raw) {
  size_t b = raw.find("*** START OF");
  b = b == std::string_view::npos ? 0 : raw.find('\n', b);
  if (b == std::string_view::npos) b = raw.size();
  size_t e = raw.find("*** END OF", b);
  if (e == std::string_view::npos) e = raw.size();
  return clean_austen(raw.substr(b, e - b));
}

namespace {

// The text of one POD formatting code's content (codes inside are expanded too).
std::string pod_codes(std::string_view s);

std::string pod_code(char code, std::string_view inner) {
  const std::string text = pod_codes(inner);
  switch (code) {
    case 'L': {  // L<text|target>, L<target>, L<"section">
      const size_t bar = text.find('|');
      std::string t = bar == std::string::npos ? text : text.substr(0, bar);
      t.erase(std::remove(t.begin(), t.end(), '"'), t.end());
      return t;
    }
    case 'E':
      if (text == "gt") return ">";
      if (text == "lt") return "<";
      if (text == "verbar") return "|";
      if (text == "sol") return "/";
      if (text == "quot") return "\"";
      if (text == "amp") return "&";
      return "";
    case 'X':
    case 'Z': return "";  // index entries, zero-width
    default: return text;  // C B I F S: the text
  }
}

std::string pod_codes(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    const char c = s[i];
    if (c >= 'A' && c <= 'Z' && i + 1 < s.size() && s[i + 1] == '<' && (i == 0 || !std::isalnum((unsigned char)s[i - 1]))) {
      size_t n = 1;  // C<< ... >>: n angle brackets, closed by a space and n '>'
      while (i + 1 + n < s.size() && s[i + 1 + n] == '<') n++;
      const size_t open = i + 1 + n;
      size_t close = std::string_view::npos, after = 0;
      if (n > 1) {
        std::string end(n + 1, '>');  // " >>"
        end[0] = ' ';
        close = s.find(end, open);
        after = close == std::string_view::npos ? 0 : close + end.size();
      } else {
        int depth = 1;
        for (size_t j = open; j < s.size(); j++) {
          if (s[j] == '<') depth++;
          if (s[j] == '>' && --depth == 0) {
            close = j, after = j + 1;
            break;
          }
        }
      }
      if (close != std::string_view::npos) {
        out += pod_code(c, trim(s.substr(open, close - open)));
        i = after - 1;
        continue;
      }
    }
    out += c;
  }
  return out;
}

}  // namespace

std::string clean_pod(std::string_view raw) {
  std::string out;
  std::string skip_until;  // "=end X" of a =begin X block
  bool skip_paragraph = false;  // =for: to the next blank line
  for (std::string_view line : split_lines(raw)) {
    if (!skip_until.empty()) {
      if (trim(line) == skip_until) skip_until.clear();
      continue;
    }
    if (skip_paragraph) {
      if (trim(line).empty()) skip_paragraph = false;
      continue;
    }
    if (!line.empty() && line[0] == '=') {
      const size_t sp = line.find_first_of(" \t");
      const std::string_view cmd = line.substr(0, sp);
      const std::string_view rest = sp == std::string_view::npos ? std::string_view() : trim(line.substr(sp));
      if (cmd == "=begin") {
        skip_until = "=end " + std::string(rest.substr(0, rest.find_first_of(" \t")));
        continue;
      }
      if (cmd == "=for") {
        skip_paragraph = true;
        continue;
      }
      if (cmd.substr(0, 5) == "=head" || cmd == "=item") {
        if (!rest.empty()) out += pod_codes(rest) + "\n";
      }
      continue;  // =cut =pod =over =back =encoding and the rest: markup only
    }
    out += pod_codes(line);
    out += '\n';
  }
  return clean_plain_text(out);
}

std::string wordnet_glosses(std::string_view raw) {
  std::string out;
  for (std::string_view line : split_lines(raw)) {
    if (line.size() < 2 || line.substr(0, 2) == "  ") continue;  // the license header
    const size_t bar = line.find(" | ");
    if (bar == std::string_view::npos) continue;
    // offset lex_filenum ss_type w_cnt (2 hex digits), then w_cnt (word lex_id) pairs
    std::vector<std::string_view> f;
    for (size_t b = 0; b < bar;) {
      size_t e = line.find(' ', b);
      if (e == std::string_view::npos || e > bar) e = bar;
      if (e > b) f.push_back(line.substr(b, e - b));
      b = e + 1;
    }
    if (f.size() < 4) continue;
    const int words = int(std::strtol(std::string(f[3]).c_str(), nullptr, 16));
    std::string lemmas;
    for (int w = 0; w < words && 4 + 2 * size_t(w) < f.size(); w++) {
      std::string lemma(f[4 + 2 * size_t(w)]);
      const size_t paren = lemma.find('(');  // adjective markers: "long(a)"
      if (paren != std::string::npos) lemma.resize(paren);
      std::replace(lemma.begin(), lemma.end(), '_', ' ');
      lemmas += (lemmas.empty() ? "" : ", ") + lemma;
    }
    const std::string_view gloss = trim(line.substr(bar + 3));
    if (lemmas.empty() || gloss.empty()) continue;
    out += lemmas + ": ";
    out += gloss;
    out += '\n';
  }
  if (!out.empty()) out.pop_back();
  return out;
}

// ---------------------------------------------------------------- readers

namespace {

[[noreturn]] void missing(const std::string& corpus, const std::string& what, const std::string& package) {
  throw std::runtime_error("corpus " + corpus + ": " + what + " not found: install the Debian package " + package +
                           " (apt-get install " + package + ")");
}

CorpusInput corpus_moby() {
  if (!executable("/usr/bin/Rscript")) missing("moby", "/usr/bin/Rscript", "r-cran-tokenizers");
  CmdResult r = run_command(
      "/usr/bin/Rscript --vanilla -e \"if (!requireNamespace('tokenizers', quietly = TRUE)) quit(status = 3); "
      "writeLines(enc2utf8(tokenizers::mobydick), useBytes = TRUE)\" 2>/dev/null");
  if (r.status == 3) missing("moby", "the R package tokenizers", "r-cran-tokenizers");
  if (r.status != 0 || r.out.size() < 1000000)
    throw std::runtime_error("corpus moby: Rscript failed reading tokenizers::mobydick (exit " +
                             std::to_string(r.status) + "): reinstall the Debian package r-cran-tokenizers");
  CorpusInput in{"moby", "debian", {source_of("r-cran-tokenizers/mobydick", r.out)}, {}};
  in.documents.push_back({"mobydick", clean_gutenberg(r.out)});
  return in;
}

// Regular files under the first existing directory of `dirs` whose names end in
// `suffix`, sorted; `keep` filters by path relative to the directory.
std::vector<std::string> files_under(const std::vector<std::string>& dirs, const std::string& suffix,
                                     const std::function<bool(const std::string&)>& keep, std::string* root) {
  for (const std::string& d : dirs) {
    if (!is_dir(d)) continue;
    std::vector<std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(d)) {
      const std::string p = e.path().string();
      if (e.is_regular_file() && p.size() > suffix.size() && p.compare(p.size() - suffix.size(), suffix.size(), suffix) == 0 &&
          keep(p.substr(d.size() + 1)))
        files.push_back(p);
    }
    std::sort(files.begin(), files.end());
    *root = d;
    return files;
  }
  return {};
}

// Every file a documentation input reads: one source and one document each.
CorpusInput docs_input(const std::string& name, const std::vector<std::string>& files, const std::string& root,
                       const std::function<std::string(std::string_view)>& clean) {
  CorpusInput in{name, "debian", {}, {}};
  for (const std::string& f : files) {
    const std::string raw = file_read(f);
    const std::string rel = name + "/" + f.substr(root.size() + 1);
    in.sources.push_back(source_of(rel, raw));
    std::string text = clean(raw);
    if (!text.empty()) in.documents.push_back({rel, std::move(text)});
  }
  return in;
}

// reST heading over/underlines ("*****", "=====", "-----"): markup, not text.
std::string clean_rst(std::string_view raw) {
  std::string out;
  for (std::string_view line : split_lines(raw)) {
    const std::string_view t = trim(line);
    const bool rule = t.size() >= 3 && std::string_view("=-~*^#\"'`+").find(t[0]) != std::string_view::npos &&
                      t.find_first_not_of(t[0]) == std::string_view::npos;
    if (rule) continue;
    out += line;
    out += '\n';
  }
  return clean_plain_text(out);
}

CorpusInput corpus_python_docs() {
  std::vector<std::string> dirs;
  for (const char* v : {"3.11", "3.12", "3.13", "3"}) dirs.push_back(std::string("/usr/share/doc/python") + v + "/html/_sources");
  std::string root;
  const auto files = files_under(dirs, ".rst.txt", [](const std::string& rel) { return rel != "whatsnew/changelog.rst.txt"; }, &root);
  if (files.empty()) missing("python-docs", "/usr/share/doc/python3.11/html/_sources", "python3.11-doc");
  return docs_input("python-docs", files, root, clean_rst);
}

CorpusInput corpus_perl_docs() {
  std::vector<std::string> dirs;
  if (is_dir("/usr/share/perl"))
    for (const auto& e : fs::directory_iterator("/usr/share/perl")) dirs.push_back(e.path().string() + "/pod");
  std::sort(dirs.rbegin(), dirs.rend());  // the newest Perl first
  std::string root;
  const auto files = files_under(dirs, ".pod", [](const std::string& rel) {
    return rel.find("delta.pod") == std::string::npos;  // release notes: lists of changes
  }, &root);
  if (files.empty()) missing("perl-docs", "/usr/share/perl/5.*/pod", "perl-doc");
  return docs_input("perl-docs", files, root, clean_pod);
}

CorpusInput corpus_wordnet() {
  CorpusInput in{"wordnet", "debian", {}, {}};
  for (const char* pos : {"noun", "verb", "adj", "adv"}) {
    const std::string path = std::string("/usr/share/wordnet/data.") + pos;
    if (!path_exists(path)) missing("wordnet", path, "wordnet-base");
    const std::string raw = file_read(path);
    in.sources.push_back(source_of(std::string("wordnet/data.") + pos, raw));
    in.documents.push_back({std::string("wordnet/") + pos, wordnet_glosses(raw)});
  }
  return in;
}

}  // namespace

void corpus_dedup(const std::vector<CorpusInput*>& inputs) {
  std::unordered_set<std::string> docs, paras;
  for (CorpusInput* in : inputs) {
    std::vector<CorpusDocument> kept;
    for (CorpusDocument& d : in->documents) {
      if (!docs.insert(sha256_hex(d.text)).second) continue;
      std::string text;
      for (std::string_view p : split_lines(d.text)) {
        if (p.size() >= 200 && !paras.insert(std::string(p)).second) continue;
        if (!text.empty()) text += '\n';
        text += p;
      }
      if (!text.empty()) kept.push_back({d.name, std::move(text)});
    }
    in->documents = std::move(kept);
  }
}

namespace {

struct Named {
  const char* name;
  CorpusInput (*read)();
  bool dedup;
};

const Named kNamed[] = {{"kjv", corpus_kjv, false},
                        {"austen", corpus_austen, false},
                        {"moby", corpus_moby, false},
                        {"python-docs", corpus_python_docs, true},
                        {"perl-docs", corpus_perl_docs, true},
                        {"wordnet", corpus_wordnet, true}};

}  // namespace

std::vector<std::string> corpus_names() {
  std::vector<std::string> v;
  for (const Named& n : kNamed) v.push_back(n.name);
  return v;
}

std::vector<std::string> corpus_resolve(const std::string& list) {
  std::vector<std::string> names;
  for (size_t b = 0; b <= list.size();) {
    size_t e = list.find(',', b);
    if (e == std::string::npos) e = list.size();
    const std::string n(trim(std::string_view(list).substr(b, e - b)));
    if (n == "default") names.insert(names.end(), {"kjv", "austen"});
    else if (n == "large") for (const Named& k : kNamed) names.push_back(k.name);
    else names.push_back(n);
    b = e + 1;
  }
  std::vector<std::string> out;
  for (const std::string& n : names) {
    bool known = false;
    for (const Named& x : kNamed) known = known || n == x.name;
    if (!known) {
      std::string list_known;
      for (const Named& x : kNamed) list_known += std::string(list_known.empty() ? "" : ", ") + x.name;
      throw std::invalid_argument("--corpus: unknown corpus \"" + n + "\" (known: " + list_known + ", default, large)");
    }
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  }
  return out;
}

std::vector<CorpusInput> corpus_named(const std::string& list) {
  std::vector<const Named*> chosen;
  for (const std::string& n : corpus_resolve(list))
    for (const Named& x : kNamed)
      if (n == x.name) chosen.push_back(&x);
  std::vector<CorpusInput> out;
  std::vector<size_t> to_dedup;
  for (const Named* k : chosen) {
    if (k->dedup) to_dedup.push_back(out.size());
    out.push_back(k->read());
  }
  std::vector<CorpusInput*> d;
  for (size_t i : to_dedup) d.push_back(&out[i]);
  corpus_dedup(d);
  return out;
}

}  // namespace moe
