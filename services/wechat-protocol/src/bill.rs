//! The trade bill of WeChat Pay v2 `pay/downloadbill` (pay.weixin.qq.com jsapi.php?chapter=9_6;
//! the layout is described on pay.weixin.qq.com/docs/merchant/products/bill-download/format-trade.html):
//! a header line of Chinese column names, one line per transaction with every field prefixed by a
//! backtick and separated by commas, then a summary header line and the summary line. Amounts are
//! yuan with two decimals; 手续费 is rounded to the fen and written with five decimals
//! (`0.04000`, WxJava `WxPayBillResultTest`).
//!
//! Columns are found by name, not position: WeChat has changed the layout (the early one has
//! 总金额 where the current one has 应结订单金额 and 订单金额, and no 费率备注; "少部分商户目前的账单格式
//! 停留在历史早期版本", format-trade). Amounts are read exactly from their decimal text into fen;
//! no floating point is involved.

/// The most a bill may be: a day's bill of a small merchant is kilobytes; this bounds memory.
pub const MAX_BILL_BYTES: usize = 64 * 1024 * 1024;

/// One transaction of the bill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillLine {
    /// 交易时间 as written (`yyyy-MM-dd HH:mm:ss`, China time): the payment's success time, or
    /// for a refund the time the refund was accepted (not its success time, format-trade).
    pub trade_time: String,
    pub transaction_id: String,
    pub out_trade_no: String,
    /// 交易状态: SUCCESS (money in), REFUND or REVOKED (money out). A refunded order keeps its
    /// SUCCESS line; the refund is a line of its own.
    pub trade_state: String,
    /// 订单金额 (the early layout: 总金额), fen. 0 on REFUND lines.
    pub total_fee_fen: i64,
    /// 微信退款单号; `None` on payment lines (written `0` or empty).
    pub refund_id: Option<String>,
    /// 商户退款单号; `None` on payment lines.
    pub out_refund_no: Option<String>,
    /// 申请退款金额 (the early layout: 退款金额), fen; 0 on payment lines.
    pub refund_fee_fen: i64,
    /// 退款状态 as of the bill's making (SUCCESS, PROCESSING, …); `None` on payment lines.
    pub refund_status: Option<String>,
}

/// The summary block (the last two lines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillSummary {
    /// 总交易单数: the number of lines, refunds included.
    pub total_count: u64,
    /// 应结订单总金额 (early layout: 总交易额), fen.
    pub settlement_total_fen: i64,
    /// 退款总金额 (early: 总退款金额), fen.
    pub refund_total_fen: i64,
    /// 充值券退款总金额 (early: 总代金券或立减优惠退款金额 / 总企业红包退款金额), fen.
    pub coupon_refund_total_fen: i64,
    /// 手续费总金额, fen (refunds give fees back, so it can be negative).
    pub fee_total_fen: i64,
    /// 订单总金额, fen; absent in the early layout.
    pub order_total_fen: Option<i64>,
    /// 申请退款总金额, fen; absent in the early layout.
    pub applied_refund_total_fen: Option<i64>,
}

/// A parsed bill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bill {
    pub lines: Vec<BillLine>,
    pub summary: BillSummary,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BillError {
    #[error("bill is {0} bytes, over the {MAX_BILL_BYTES}-byte cap")]
    TooLarge(usize),
    #[error("bill is not UTF-8")]
    NotUtf8,
    #[error("bill has no {0}")]
    MissingPart(&'static str),
    #[error("bill lacks the column {0}")]
    MissingColumn(&'static str),
    #[error("bill has a column WeChat does not document: {0}")]
    UnknownColumn(String),
    #[error("line {line}: {found} fields where the header has {expected}")]
    FieldCount {
        line: usize,
        expected: usize,
        found: usize,
    },
    #[error("line {line}: {column} is not an amount in yuan: {text:?}")]
    Amount {
        line: usize,
        column: &'static str,
        text: String,
    },
    #[error("line {line}: does not start with a backtick")]
    NoBacktick { line: usize },
}

/// Every detail column WeChat documents, current and early layouts (9_6, format-trade; WxJava
/// `WxPayBillResultTest`; the 企业红包 names of bills captured in 2018).
const DETAIL_COLUMNS: &[&str] = &[
    "交易时间",
    "公众账号ID",
    "服务商的APPID",
    "商户号",
    "特约商户号",
    "子商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "总金额",
    "代金券金额",
    "代金券或立减优惠金额",
    "企业红包金额",
    "退款申请时间",
    "退款成功时间",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "代金券或立减优惠退款金额",
    "企业红包退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
];

/// The detail columns holding amounts in yuan: each is checked on every line, used or not, so a
/// bill with one malformed amount is refused whole.
const AMOUNT_COLUMNS: &[&str] = &[
    "应结订单金额",
    "总金额",
    "代金券金额",
    "代金券或立减优惠金额",
    "企业红包金额",
    "退款金额",
    "充值券退款金额",
    "代金券或立减优惠退款金额",
    "企业红包退款金额",
    "手续费",
    "订单金额",
    "申请退款金额",
];

/// Splits off a leading BOM and cuts the text into non-empty lines, CRLF or LF.
fn lines(text: &str) -> Vec<&str> {
    text.strip_prefix('\u{feff}')
        .unwrap_or(text)
        .lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.trim().is_empty())
        .collect()
}

/// The fields of a data line: each starts with a backtick, and a comma comes before the next
/// backtick. Splitting on ",`" keeps commas inside a value (a 商品名称) intact.
fn fields(line: &str, number: usize) -> Result<Vec<&str>, BillError> {
    let Some(rest) = line.strip_prefix('`') else {
        return Err(BillError::NoBacktick { line: number });
    };
    Ok(rest.split(",`").map(str::trim).collect())
}

/// Fen from a yuan amount as WeChat writes it: `19.90`, `0.0`, `0`, `-0.02000`. Digits past the
/// second decimal must be zeros (fees are rounded to the fen, then padded).
pub fn yuan_to_fen(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let plain = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 15 || !plain(whole) || !plain(fraction) {
        return None;
    }
    if digits.contains('.') && fraction.is_empty() || fraction.len() > 5 {
        return None;
    }
    if fraction.bytes().skip(2).any(|b| b != b'0') {
        return None;
    }
    let mut cents = [b'0'; 2];
    for (slot, digit) in cents.iter_mut().zip(fraction.bytes()) {
        *slot = digit;
    }
    let whole: i64 = whole.parse().ok()?;
    let cents = i64::from(cents[0] - b'0') * 10 + i64::from(cents[1] - b'0');
    let fen = whole.checked_mul(100)?.checked_add(cents)?;
    Some(if negative { -fen } else { fen })
}

/// A header line, its names looked up by name.
struct Columns<'a> {
    names: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    fn new(line: &'a str) -> Self {
        Self {
            names: line.split(',').map(str::trim).collect(),
        }
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| *n == name)
    }

    /// The first of `names` present: a current name, then its early-layout equivalents.
    fn require(&self, names: &[&'static str]) -> Result<usize, BillError> {
        names
            .iter()
            .find_map(|name| self.find(name))
            .ok_or(BillError::MissingColumn(names[0]))
    }
}

fn amount(
    values: &[&str],
    index: usize,
    column: &'static str,
    line: usize,
) -> Result<i64, BillError> {
    let text = values.get(index).copied().unwrap_or_default();
    // Payment lines leave the refund amounts empty in some bills (`0` in others).
    if text.is_empty() {
        return Ok(0);
    }
    yuan_to_fen(text).ok_or_else(|| BillError::Amount {
        line,
        column,
        text: text.to_owned(),
    })
}

/// A refund id column: `0` or empty on payment lines.
fn optional(values: &[&str], index: usize) -> Option<String> {
    values
        .get(index)
        .filter(|v| !v.is_empty() && **v != "0")
        .map(|v| (*v).to_owned())
}

/// Reads an ALL-type bill (SUCCESS and REFUND bills parse too: absent refund columns read as
/// none). Refuses inputs over [`MAX_BILL_BYTES`], unknown or missing columns, lines whose field
/// count differs from the header's, and amounts that are not exact yuan.
pub fn parse_bill(bytes: &[u8]) -> Result<Bill, BillError> {
    if bytes.len() > MAX_BILL_BYTES {
        return Err(BillError::TooLarge(bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| BillError::NotUtf8)?;
    let lines = lines(text);
    let Some((header, rest)) = lines.split_first() else {
        return Err(BillError::MissingPart("header line"));
    };
    let columns = Columns::new(header);
    if let Some(unknown) = columns.names.iter().find(|n| !DETAIL_COLUMNS.contains(n)) {
        return Err(BillError::UnknownColumn((*unknown).to_owned()));
    }
    let time = columns.require(&["交易时间"])?;
    let transaction = columns.require(&["微信订单号"])?;
    let order = columns.require(&["商户订单号"])?;
    let state = columns.require(&["交易状态"])?;
    let total = columns.require(&["订单金额", "总金额"])?;
    let refund_id = columns.find("微信退款单号");
    let out_refund_no = columns.find("商户退款单号");
    let refund_fee = columns
        .find("申请退款金额")
        .or_else(|| columns.find("退款金额"));
    let refund_status = columns.find("退款状态");

    // The summary is the last two lines; its header is the first line not starting with '`'.
    let Some(summary_at) = rest.iter().position(|line| !line.starts_with('`')) else {
        return Err(BillError::MissingPart("summary header"));
    };
    let (details, summary) = rest.split_at(summary_at);
    let [summary_header, summary_values] = summary else {
        return Err(BillError::MissingPart("summary line"));
    };
    let mut parsed = Vec::with_capacity(details.len());
    for (i, line) in details.iter().enumerate() {
        let number = i + 2;
        let values = fields(line, number)?;
        if values.len() != columns.names.len() {
            return Err(BillError::FieldCount {
                line: number,
                expected: columns.names.len(),
                found: values.len(),
            });
        }
        for (index, name) in columns.names.iter().enumerate() {
            if let Some(column) = AMOUNT_COLUMNS.iter().find(|c| *c == name) {
                amount(&values, index, column, number)?;
            }
        }
        let text = |index: usize| values[index].to_owned();
        parsed.push(BillLine {
            trade_time: text(time),
            transaction_id: text(transaction),
            out_trade_no: text(order),
            trade_state: text(state),
            total_fee_fen: amount(&values, total, "订单金额", number)?,
            refund_id: refund_id.and_then(|i| optional(&values, i)),
            out_refund_no: out_refund_no.and_then(|i| optional(&values, i)),
            refund_fee_fen: match refund_fee {
                Some(i) => amount(&values, i, "申请退款金额", number)?,
                None => 0,
            },
            refund_status: refund_status.and_then(|i| optional(&values, i)),
        });
    }
    let summary = parse_summary(summary_header, summary_values, details.len() + 3)?;
    Ok(Bill {
        lines: parsed,
        summary,
    })
}

fn parse_summary(header: &str, line: &str, number: usize) -> Result<BillSummary, BillError> {
    let columns = Columns::new(header);
    const KNOWN: &[&str] = &[
        "总交易单数",
        "应结订单总金额",
        "总交易额",
        "退款总金额",
        "总退款金额",
        "充值券退款总金额",
        "总代金券或立减优惠退款金额",
        "总企业红包退款金额",
        "手续费总金额",
        "订单总金额",
        "申请退款总金额",
    ];
    if let Some(unknown) = columns.names.iter().find(|n| !KNOWN.contains(n)) {
        return Err(BillError::UnknownColumn((*unknown).to_owned()));
    }
    let values = fields(line, number)?;
    if values.len() != columns.names.len() {
        return Err(BillError::FieldCount {
            line: number,
            expected: columns.names.len(),
            found: values.len(),
        });
    }
    let count_at = columns.require(&["总交易单数"])?;
    let total_count = values[count_at]
        .parse::<u64>()
        .map_err(|_| BillError::Amount {
            line: number,
            column: "总交易单数",
            text: values[count_at].to_owned(),
        })?;
    let sum = |names: &[&'static str]| -> Result<i64, BillError> {
        amount(&values, columns.require(names)?, names[0], number)
    };
    let optional_sum = |name: &'static str| -> Result<Option<i64>, BillError> {
        columns
            .find(name)
            .map(|i| amount(&values, i, name, number))
            .transpose()
    };
    Ok(BillSummary {
        total_count,
        settlement_total_fen: sum(&["应结订单总金额", "总交易额"])?,
        refund_total_fen: sum(&["退款总金额", "总退款金额"])?,
        coupon_refund_total_fen: sum(&[
            "充值券退款总金额",
            "总代金券或立减优惠退款金额",
            "总企业红包退款金额",
        ])?,
        fee_total_fen: sum(&["手续费总金额"])?,
        order_total_fen: optional_sum("订单总金额")?,
        applied_refund_total_fen: optional_sum("申请退款总金额")?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A real ALL bill (one of its 48 lines kept), binarywang/WxJava
    /// `WxPayBillResultTest.PAY_BILL_RESULT_ALL_CONTENT`, ids masked there.
    const WXJAVA_ALL: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\n`2019-07-25 08:35:41,`WWWW,`XXXXXXXX,`0,`,`XXXXXXXXXXXXX,`XXXXXXXXXX,`XXXXXXXXXXX,`JSAPI,`SUCCESS,`PSBC_DEBIT,`CNY,`6.00,`0.00,`0,`0,`0.00,`0.00,`,`,`XXXXXX,`XXXXXXX,`0.04000,`0.60%,`6.00,`0.00,`\n总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n`48,`5.76,`1.42,`0.00,`0.01000,`5.76,`1.42\n";

    /// The example of the 9_6 documentation (early layout), as WxJava's
    /// `PAY_BILL_RESULT_ALL_CONTENT_1` keeps it (full-width colons in the times included).
    const DOC_ALL_EARLY: &str = "交易时间,公众账号ID,商户号,子商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,总金额,代金券或立减优惠金额,微信退款单号,商户退款单号,退款金额,代金券或立减优惠退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率\n`2014-11-10 16：33：45,`wx2421b1c4370ec43b,`10000100,`0,`1000,`1001690740201411100005734289,`1415640626,`085e9858e3ba5186aafcbaed1,`MICROPAY,`SUCCESS,`OTHERS,`CNY,`0.01,`0.0,`0,`0,`0,`0,`,`,`被扫支付测试,`订单额外描述,`0,`0.60%\n`2014-11-10 16：46：14,`wx2421b1c4370ec43b,`10000100,`0,`1000,`1002780740201411100005729794,`1415635270,`085e9858e90ca40c0b5aee463,`MICROPAY,`SUCCESS,`OTHERS,`CNY,`0.01,`0.0,`0,`0,`0,`0,`,`,`被扫支付测试,`订单额外描述,`0,`0.60%\n总交易单数,总交易额,总退款金额,总代金券或立减优惠退款金额,手续费总金额\n`2,`0.02,`0.0,`0.0,`0";

    /// A REFUND line of a real bill (WxJava `PAY_BILL_RESULT_REFUND_CONTENT`): the REFUND
    /// layout, with 退款申请时间 and 退款成功时间, and the fee given back in the summary.
    const WXJAVA_REFUND: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,退款申请时间,退款成功时间,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\n`2019-07-23 20:53:36,`xxx,`xxx,`xxx,`,`xxx,`xxxx,`xxxxx,`JSAPI,`REFUND,`CFT,`CNY,`0.00,`0.00,`2019-07-23 20:53:36,`2019-07-23 20:53:40,`xxxx,`xxx,`0.01,`0.00,`ORIGINAL,`SUCCESS,`xxxx,`xxxx,`0.00000,`0.60%,`0.00,`0.01,`\n总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n`4,`0.00,`2.02,`0.00,`-0.02000,`0.00,`2.02";

    #[test]
    fn reads_the_current_all_layout() {
        let bill = parse_bill(WXJAVA_ALL.as_bytes()).unwrap();
        assert_eq!(bill.lines.len(), 1);
        let line = &bill.lines[0];
        assert_eq!(line.trade_time, "2019-07-25 08:35:41");
        assert_eq!(line.transaction_id, "XXXXXXXXXXXXX");
        assert_eq!(line.out_trade_no, "XXXXXXXXXX");
        assert_eq!(line.trade_state, "SUCCESS");
        assert_eq!(line.total_fee_fen, 600);
        assert_eq!(line.refund_id, None);
        assert_eq!(line.out_refund_no, None);
        assert_eq!(line.refund_fee_fen, 0);
        assert_eq!(line.refund_status, None);
        assert_eq!(
            bill.summary,
            BillSummary {
                total_count: 48,
                settlement_total_fen: 576,
                refund_total_fen: 142,
                coupon_refund_total_fen: 0,
                fee_total_fen: 1,
                order_total_fen: Some(576),
                applied_refund_total_fen: Some(142),
            }
        );
    }

    #[test]
    fn reads_the_documented_early_layout() {
        let bill = parse_bill(DOC_ALL_EARLY.as_bytes()).unwrap();
        assert_eq!(bill.lines.len(), 2);
        assert_eq!(bill.lines[1].out_trade_no, "1415635270");
        assert_eq!(bill.lines[1].total_fee_fen, 1);
        assert_eq!(bill.summary.total_count, 2);
        assert_eq!(bill.summary.settlement_total_fen, 2);
        assert_eq!(bill.summary.order_total_fen, None);
    }

    #[test]
    fn reads_a_refund_line() {
        let bill = parse_bill(WXJAVA_REFUND.as_bytes()).unwrap();
        let line = &bill.lines[0];
        assert_eq!(line.trade_state, "REFUND");
        assert_eq!(line.total_fee_fen, 0);
        assert_eq!(line.refund_id.as_deref(), Some("xxxx"));
        assert_eq!(line.out_refund_no.as_deref(), Some("xxx"));
        assert_eq!(line.refund_fee_fen, 1);
        assert_eq!(line.refund_status.as_deref(), Some("SUCCESS"));
        assert_eq!(bill.summary.fee_total_fen, -2);
    }

    #[test]
    fn takes_a_bom_and_crlf() {
        let text = format!("\u{feff}{}", WXJAVA_ALL.replace('\n', "\r\n"));
        assert_eq!(
            parse_bill(text.as_bytes()).unwrap(),
            parse_bill(WXJAVA_ALL.as_bytes()).unwrap()
        );
    }

    #[test]
    fn finds_columns_by_name() {
        // The same bill with 商户订单号 and 微信订单号 swapped, header and line alike.
        let swapped = WXJAVA_ALL
            .replacen("微信订单号,商户订单号", "商户订单号,微信订单号", 1)
            .replacen(
                "`XXXXXXXXXXXXX,`XXXXXXXXXX",
                "`XXXXXXXXXX,`XXXXXXXXXXXXX",
                1,
            );
        assert_eq!(
            parse_bill(swapped.as_bytes()).unwrap(),
            parse_bill(WXJAVA_ALL.as_bytes()).unwrap()
        );
    }

    #[test]
    fn keeps_commas_inside_values() {
        let text = WXJAVA_ALL.replacen("`XXXXXX,", "`备注信息,充值送书,", 1);
        assert_eq!(parse_bill(text.as_bytes()).unwrap().lines.len(), 1);
    }

    #[test]
    fn amounts_are_exact() {
        assert_eq!(yuan_to_fen("19.90"), Some(1990));
        assert_eq!(yuan_to_fen("0.0"), Some(0));
        assert_eq!(yuan_to_fen("0"), Some(0));
        assert_eq!(yuan_to_fen("0.04000"), Some(4));
        assert_eq!(yuan_to_fen("-0.02000"), Some(-2));
        assert_eq!(yuan_to_fen("1234567.8"), Some(123_456_780));
        for bad in [
            "", "1.", ".5", "1.005", "0.00001", "1,00", "1e3", "--1", "19.9x", "1.000000",
        ] {
            assert_eq!(yuan_to_fen(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn refuses_a_malformed_amount() {
        let text = WXJAVA_ALL.replacen("`6.00,`0.00,`", "`6.001,`0.00,`", 1);
        assert!(matches!(
            parse_bill(text.as_bytes()),
            Err(BillError::Amount { line: 2, .. })
        ));
    }

    #[test]
    fn refuses_unknown_and_missing_columns() {
        let unknown = WXJAVA_ALL.replacen("费率备注", "备注", 1);
        assert_eq!(
            parse_bill(unknown.as_bytes()),
            Err(BillError::UnknownColumn("备注".to_owned()))
        );
        let missing = WXJAVA_ALL.replacen("商户订单号", "设备号", 1);
        assert_eq!(
            parse_bill(missing.as_bytes()),
            Err(BillError::MissingColumn("商户订单号"))
        );
    }

    #[test]
    fn refuses_short_lines_and_missing_parts() {
        let short = WXJAVA_ALL.replacen(",`0.60%", "", 1);
        assert!(matches!(
            parse_bill(short.as_bytes()),
            Err(BillError::FieldCount { line: 2, .. })
        ));
        let no_summary: String = WXJAVA_ALL.lines().take(2).collect::<Vec<_>>().join("\n");
        assert_eq!(
            parse_bill(no_summary.as_bytes()),
            Err(BillError::MissingPart("summary header"))
        );
        assert_eq!(parse_bill(b""), Err(BillError::MissingPart("header line")));
        assert_eq!(parse_bill(&[0xff, 0xfe]), Err(BillError::NotUtf8));
    }

    #[test]
    fn refuses_oversized_input() {
        let big = vec![b'a'; MAX_BILL_BYTES + 1];
        assert_eq!(
            parse_bill(&big),
            Err(BillError::TooLarge(MAX_BILL_BYTES + 1))
        );
    }
}
