#include "local/log_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace cruncher::local {
namespace {

struct StringSink final : LogSink {
  std::string text;
  size_t largest_piece = 0;
  void BeginAttempt(const std::string&) override {}
  void Write(std::string_view data) override {
    text.append(data);
    largest_piece = std::max(largest_piece, data.size());
  }
};

class LogFileTest : public ::testing::Test {
 protected:
  std::string path_ = ::testing::TempDir() + "/log_file_test_" +
                      std::to_string(::getpid()) + ".log";
  void TearDown() override { ::unlink(path_.c_str()); }
  void Append(const std::string& text) {
    std::ofstream(path_, std::ios::app) << text;
  }
  std::string Tail(const std::string& content, long long lines) {
    ::unlink(path_.c_str());
    Append(content);
    LogFileReader reader(path_, lines);
    StringSink sink;
    EXPECT_TRUE(reader.ReadNew(sink).ok());
    return sink.text;
  }
};

TEST_F(LogFileTest, TailCountsLinesFromTheEnd) {
  EXPECT_EQ(Tail("a\nb\nc\n", 1), "c\n");
  EXPECT_EQ(Tail("a\nb\nc\n", 2), "b\nc\n");
  EXPECT_EQ(Tail("a\nb\nc", 1), "c");  // a last line without its newline
  EXPECT_EQ(Tail("a\nb\nc", 2), "b\nc");
  EXPECT_EQ(Tail("a\nb\nc\n", 3), "a\nb\nc\n");
  EXPECT_EQ(Tail("a\nb\nc\n", 10), "a\nb\nc\n");
  EXPECT_EQ(Tail("a\nb\nc\n", 0), "");
  EXPECT_EQ(Tail("a\nb\nc\n", -1), "a\nb\nc\n");  // all
  EXPECT_EQ(Tail("\n\n", 1), "\n");
  EXPECT_EQ(Tail("", 3), "");
}

TEST_F(LogFileTest, TailSpansReadPieces) {
  // Lines longer than a read piece, and line ends on piece boundaries.
  const std::string long_line(LogFileReader::kChunkBytes + 7, 'x');
  std::string content;
  for (int i = 0; i < 5; ++i) content += long_line + std::to_string(i) + "\n";
  EXPECT_EQ(Tail(content, 2), long_line + "3\n" + long_line + "4\n");
  std::string exact(LogFileReader::kChunkBytes - 1, 'y');
  EXPECT_EQ(Tail(exact + "\n" + exact + "\n", 1), exact + "\n");
}

TEST_F(LogFileTest, ReadsWhatIsAppendedInBoundedPieces) {
  LogFileReader reader(path_, -1);
  StringSink sink;
  ASSERT_TRUE(reader.ReadNew(sink).ok());  // no file yet: no output
  EXPECT_EQ(sink.text, "");
  const std::string big(3 * LogFileReader::kChunkBytes + 5, 'z');
  Append(big);
  ASSERT_TRUE(reader.ReadNew(sink).ok());
  EXPECT_EQ(sink.text, big);
  EXPECT_LE(sink.largest_piece, LogFileReader::kChunkBytes);
  Append("more\n");
  ASSERT_TRUE(reader.ReadNew(sink).ok());
  EXPECT_EQ(sink.text, big + "more\n");
}

TEST_F(LogFileTest, TailAppliesToWhatIsThereWhenFirstRead) {
  Append("1\n2\n3\n");
  LogFileReader reader(path_, 1);
  StringSink sink;
  ASSERT_TRUE(reader.ReadNew(sink).ok());
  Append("4\n5\n");
  ASSERT_TRUE(reader.ReadNew(sink).ok());
  EXPECT_EQ(sink.text, "3\n4\n5\n");
}

}  // namespace
}  // namespace cruncher::local
