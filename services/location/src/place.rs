//! What a lookup answers: Chinese place names and the string an album shows.

/// The country name used for every point in China's polygons (香港, 澳门 and 台湾 included).
pub const CHINA: &str = "中国";

/// Place names in Chinese; a level that does not apply is empty. Where no source has a zh-CN name
/// for a division or city abroad, its local name stands in and is marked untranslated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Place {
    pub country: String,
    pub province: String,
    pub city: String,
    pub district: String,
    pub province_untranslated: bool,
    pub city_untranslated: bool,
}

/// How a point was placed, from the most to the least precise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Inside (or on the simplified edge of) one of China's county-level polygons.
    ChinaRegion,
    /// Off China's coast: the nearest Chinese place within 25 km, named by its region.
    NearestPlace,
    /// Abroad: the city the point belongs to (within 60 km; 25 km outside every country).
    City,
    /// Inside a country (and its first-level division) with no city within 60 km.
    Country,
}

/// Where a point is (the locator answers None at sea, far from any place).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub place: Place,
    pub source: Source,
}

impl Place {
    /// Returns the album's caption: 省 市 区 inside China ("浙江省 杭州市 西湖区"), country and
    /// city elsewhere ("日本 东京", as Chinese map apps show a place abroad; the division only
    /// where no city is near: "美国 阿拉斯加州"). A name equal to the one before it is shown once,
    /// so the municipalities (北京市 北京市 东城区), 香港/澳门, and cities without districts
    /// (湖北省 仙桃市 仙桃市) read naturally.
    pub fn display(&self) -> String {
        let levels: &[&str] = if self.country == CHINA {
            &[&self.province, &self.city, &self.district]
        } else if self.city.is_empty() {
            &[&self.country, &self.province, &self.district]
        } else {
            &[&self.country, &self.city, &self.district]
        };
        let mut shown: Vec<&str> = Vec::with_capacity(levels.len());
        for name in levels.iter().copied().filter(|name| !name.is_empty()) {
            if shown.last() != Some(&name) {
                shown.push(name);
            }
        }
        if shown.is_empty() && !self.country.is_empty() {
            // A point in China that no county polygon holds: at least say the country.
            return self.country.clone();
        }
        shown.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn china(province: &str, city: &str, district: &str) -> Place {
        Place {
            country: CHINA.into(),
            province: province.into(),
            city: city.into(),
            district: district.into(),
            ..Place::default()
        }
    }

    #[test]
    fn provinces_show_three_levels() {
        assert_eq!(
            china("浙江省", "杭州市", "西湖区").display(),
            "浙江省 杭州市 西湖区"
        );
    }

    #[test]
    fn municipalities_are_shown_once() {
        for (name, district) in [
            ("北京市", "东城区"),
            ("上海市", "黄浦区"),
            ("天津市", "和平区"),
            ("重庆市", "渝中区"),
        ] {
            assert_eq!(
                china(name, name, district).display(),
                format!("{name} {district}")
            );
        }
        assert_eq!(
            china("香港特别行政区", "香港特别行政区", "中西区").display(),
            "香港特别行政区 中西区"
        );
    }

    #[test]
    fn a_city_without_districts_is_shown_once() {
        assert_eq!(
            china("湖北省", "仙桃市", "仙桃市").display(),
            "湖北省 仙桃市"
        );
        assert_eq!(china("台湾省", "台湾省", "台湾省").display(), "台湾省");
        assert_eq!(
            china("青海省", "海西蒙古族藏族自治州", "").display(),
            "青海省 海西蒙古族藏族自治州"
        );
    }

    #[test]
    fn abroad_the_country_comes_first() {
        let tokyo = Place {
            country: "日本".into(),
            city: "东京".into(),
            ..Place::default()
        };
        assert_eq!(tokyo.display(), "日本 东京");
        let sahara = Place {
            country: "阿尔及利亚".into(),
            ..Place::default()
        };
        assert_eq!(sahara.display(), "阿尔及利亚");
        // The division shows only where no city is near.
        let tokyo_with_its_division = Place {
            province: "东京都".into(),
            ..tokyo
        };
        assert_eq!(tokyo_with_its_division.display(), "日本 东京");
        let alaska = Place {
            country: "美国".into(),
            province: "阿拉斯加州".into(),
            ..Place::default()
        };
        assert_eq!(alaska.display(), "美国 阿拉斯加州");
        // A place whose only name is its country's (Singapore) is not repeated.
        let singapore = Place {
            country: "新加坡".into(),
            city: "新加坡".into(),
            ..Place::default()
        };
        assert_eq!(singapore.display(), "新加坡");
    }

    #[test]
    fn china_without_a_region_still_names_the_country() {
        assert_eq!(china("", "", "").display(), "中国");
        assert_eq!(Place::default().display(), "");
    }
}
