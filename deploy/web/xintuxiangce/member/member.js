/*
 * 芯图相册 会员中心 (member H5 page). Runs inside WeChat's browser:
 *   1. GET /api/v1/member/profile; on 401 sign in through WeChat OAuth (the gateway's authorize
 *      endpoint, which comes back here with our session cookie);
 *   2. shows credits, membership and prices;
 *   3. buys membership or N credits: create-order → WeixinJSBridge 'getBrandWCPayRequest' → polls
 *      the order until WeChat Pay's notify has marked it paid → refreshes the profile;
 *   4. lists the apps signed in with this WeChat user and signs one out (two taps: the first asks).
 * The bridge's answer is only a hint for the UI: credits come from the notify, never from it.
 * Plain script, no build step, talks to its own origin only.
 */
(function () {
  'use strict';

  var PAGE_PATH = '/member/';
  var SIGN_IN_GUARD = 'xintu.member.signin';
  var POLL_LIMIT_MS = 30000;

  var $ = function (id) { return document.getElementById(id); };
  var app = $('app');
  var state = { profile: null, busy: false, qty: 10 };

  // ---------- helpers ----------

  function inWeChat() {
    return /MicroMessenger/i.test(navigator.userAgent) ||
      typeof window.WeixinJSBridge !== 'undefined';
  }

  function show(view) {
    app.setAttribute('data-state', view);
    ['loading', 'outside', 'error', 'erased', 'main'].forEach(function (name) {
      $('view-' + name).hidden = name !== view;
    });
  }

  function yuan(fen) {
    return '¥' + (Number(fen) / 100).toFixed(2);
  }

  function formatDate(iso) {
    var date = new Date(iso);
    try {
      return new Intl.DateTimeFormat('zh-CN', {
        timeZone: 'Asia/Shanghai', year: 'numeric', month: 'long', day: 'numeric'
      }).format(date);
    } catch (e) {
      return date.getFullYear() + '年' + (date.getMonth() + 1) + '月' + date.getDate() + '日';
    }
  }

  function daysLeft(iso) {
    return Math.max(0, Math.ceil((Date.parse(iso) - Date.now()) / 86400000));
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function ApiError(status, code, message, requestId) {
    this.status = status;
    this.code = code;
    this.message = message;
    this.requestId = requestId || '';
  }

  function api(method, path, body) {
    var init = {
      method: method,
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { 'Accept': 'application/json' }
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (res) {
      return res.json().catch(function () { return null; }).then(function (data) {
        if (res.ok) return data;
        var err = (data && data.error) || {};
        throw new ApiError(res.status, err.code || ('http_' + res.status),
          err.message || ('HTTP ' + res.status),
          err.request_id || res.headers.get('X-Request-Id'));
      });
    }, function () {
      throw new ApiError(0, 'network', '网络连接失败');
    });
  }

  // ---------- sign-in ----------

  function signIn() {
    // One automatic attempt a minute: a sign-in that comes back without a session must not loop.
    var last = Number(sessionStorage.getItem(SIGN_IN_GUARD) || 0);
    if (Date.now() - last < 60000) {
      showError('微信登录没有完成', '请关闭本页，再从公众号菜单「会员中心」重新打开。');
      return;
    }
    sessionStorage.setItem(SIGN_IN_GUARD, String(Date.now()));
    location.replace('/api/v1/member/oauth/authorize?return_to=' + PAGE_PATH);
  }

  function showError(title, text) {
    $('error-title').textContent = title;
    $('error-text').textContent = text;
    show('error');
  }

  // ---------- profile ----------

  function loadProfile() {
    return api('GET', '/api/v1/member/profile').then(function (profile) {
      sessionStorage.removeItem(SIGN_IN_GUARD);
      state.profile = profile;
      render();
      show('main');
      return profile;
    });
  }

  function render() {
    var p = state.profile;
    var prices = p.prices;
    var member = p.is_member && p.member_expire_at && Date.parse(p.member_expire_at) > Date.now();

    $('user-tag').textContent = p.openid ? '· ' + p.openid.slice(-6) : '';
    $('credits').textContent = p.available_credits;
    $('total-credits').textContent = p.total_credits;
    $('member-days').textContent = member ? daysLeft(p.member_expire_at) : '—';
    var badge = $('member-badge');
    badge.textContent = member ? '芯图会员' : (p.member_expire_at ? '会员已过期' : '未开通会员');
    badge.className = member ? 'badge member' : 'badge';
    var line = $('member-line');
    if (member) {
      line.innerHTML = '';
      line.appendChild(document.createTextNode('会员有效期至 '));
      var until = document.createElement('strong');
      until.id = 'member-until';
      until.textContent = formatDate(p.member_expire_at);
      line.appendChild(until);
      line.appendChild(document.createTextNode('，期间云端智能分类不消耗额度。'));
    } else {
      line.textContent = '开通会员后，云端智能分类不再消耗额度。';
    }
    $('follow-hint').hidden = !!p.following;

    $('member-price').textContent = yuan(prices.member_price_fen);
    $('member-period').textContent = ' / ' + prices.member_days + ' 天';
    $('member-bonus').textContent = prices.member_bonus_credits;
    $('renew-window').textContent = prices.member_renew_window_days;
    var buyMember = $('buy-member');
    var hint = $('member-hint');
    if (!member) {
      buyMember.textContent = '开通会员 ' + yuan(prices.member_price_fen);
      buyMember.disabled = state.busy;
      hint.textContent = '开通后立即生效，有效期 ' + prices.member_days + ' 天。';
    } else if (p.can_buy_membership) {
      buyMember.textContent = '续费会员 ' + yuan(prices.member_price_fen);
      buyMember.disabled = state.busy;
      hint.textContent = '续费后从 ' + formatDate(p.member_expire_at) + ' 起顺延 ' + prices.member_days + ' 天。';
    } else {
      buyMember.textContent = '会员有效期内';
      buyMember.disabled = true;
      hint.textContent = '到期前 ' + prices.member_renew_window_days + ' 天内可续费。';
    }

    var reminders = $('reminders');
    reminders.checked = !!p.expiry_reminders;
    reminders.disabled = !p.following && !p.expiry_reminders;
    if (!p.following) {
      $('reminders-hint').textContent = '关注公众号「芯图相册」后才能收到提醒。';
    }

    $('unit-price').textContent = yuan(prices.credit_unit_fen);
    $('qty').min = prices.credits_min;
    $('qty').max = prices.credits_max;
    $('qty-hint').textContent = '每次可购买 ' + prices.credits_min + '–' + prices.credits_max + ' 张';
    renderQty();
  }

  function clampQty(value) {
    var prices = state.profile ? state.profile.prices : { credits_min: 1, credits_max: 1000 };
    var n = Math.floor(Number(value));
    if (!isFinite(n)) n = prices.credits_min;
    return Math.min(prices.credits_max, Math.max(prices.credits_min, n));
  }

  function renderQty() {
    var unit = state.profile ? state.profile.prices.credit_unit_fen : 50;
    $('qty').value = state.qty;
    $('credits-total').textContent = yuan(unit * state.qty);
    $('buy-credits').textContent = '购买 ' + state.qty + ' 张额度';
    $('buy-credits').disabled = state.busy;
    Array.prototype.forEach.call(document.querySelectorAll('.chip'), function (chip) {
      chip.classList.toggle('active', Number(chip.getAttribute('data-amount')) === state.qty);
    });
  }

  // ---------- notices ----------

  function notice(kind, title, text, action) {
    var box = $('notice');
    box.setAttribute('data-kind', kind);
    $('notice-title').textContent = title;
    $('notice-text').textContent = text || '';
    var button = $('notice-action');
    button.hidden = !action;
    button.onclick = action || null;
    box.hidden = false;
    if (box.scrollIntoView) box.scrollIntoView({ block: 'nearest' });
  }

  function setBusy(busy) {
    state.busy = busy;
    ['buy-member', 'buy-credits'].forEach(function (id) { $(id).classList.toggle('busy', busy); });
    if (state.profile) render();
  }

  // ---------- paying ----------

  function bridge() {
    return new Promise(function (resolve, reject) {
      if (window.WeixinJSBridge && typeof window.WeixinJSBridge.invoke === 'function') {
        resolve(window.WeixinJSBridge);
        return;
      }
      var timer = setTimeout(function () { reject(new Error('no WeixinJSBridge')); }, 15000);
      document.addEventListener('WeixinJSBridgeReady', function () {
        clearTimeout(timer);
        resolve(window.WeixinJSBridge);
      }, { once: true });
    });
  }

  function requestPayment(params) {
    return bridge().then(function (jsBridge) {
      return new Promise(function (resolve) {
        jsBridge.invoke('getBrandWCPayRequest', params, function (res) { resolve(res || {}); });
      });
    });
  }

  function describe(order) {
    return order.order_type === 'member'
      ? '芯图会员 ' + order.membership_days + ' 天'
      : order.credits_amount + ' 张额度';
  }

  function buy(request) {
    if (state.busy) return;
    setBusy(true);
    notice('paying', '正在下单…', '');
    api('POST', '/api/v1/payment/create-order', request).then(function (created) {
      var order = created.order;
      notice('paying', '请在微信支付中完成付款', describe(order) + '，' + yuan(order.total_fee));
      return requestPayment(created.pay_params).then(function (res) {
        var result = String(res.err_msg || '');
        if (/:ok$/.test(result)) return confirmPaid(order);
        if (/:cancel$/.test(result)) {
          notice('cancelled', '已取消支付', '订单没有付款，不会扣费。需要时可以重新购买。');
          return null;
        }
        notice('failed', '支付没有成功', '微信支付未能完成这笔付款，请稍后重试。如已扣款，请勿重复支付，款项以到账为准。');
        return null;
      }, function () {
        notice('failed', '无法调起微信支付', '请确认在微信中打开本页，然后重试。');
      });
    }).catch(orderError).then(function () { setBusy(false); });
  }

  function orderError(err) {
    if (!(err instanceof ApiError)) {
      notice('error', '出了点问题', '请刷新页面后重试。');
      return null;
    }
    if (err.status === 401) {
      signIn();
      return null;
    }
    if (err.status === 409 && err.code === 'membership_active') {
      return loadProfile().then(function (p) {
        var until = p.member_expire_at ? '会员有效期至 ' + formatDate(p.member_expire_at) + '，' : '';
        notice('member_active', '您已是芯图会员', until + '到期前 ' +
          p.prices.member_renew_window_days + ' 天内可以续费。');
      }, function () {
        notice('member_active', '您已是芯图会员', '会员有效期内暂不能重复开通。');
      });
    }
    var text = err.status === 0 ? '网络连接失败，请检查网络后重试。'
      : err.status >= 500 ? '服务暂时不可用，请稍后重试。'
        : (err.message || '请求没有成功，请重试。');
    if (err.requestId) text += '（请求编号 ' + err.requestId + '）';
    notice('error', '下单没有成功', text);
    return null;
  }

  function confirmPaid(order) {
    notice('confirming', '付款完成，正在确认到账…', '通常只需几秒钟，请不要关闭页面。');
    var deadline = Date.now() + POLL_LIMIT_MS;
    var delay = 700;
    var poll = function () {
      return api('GET', '/api/v1/payment/orders/' + encodeURIComponent(order.order_no))
        .catch(function (err) {
          if (err instanceof ApiError && err.status === 401) throw err;
          return null; // a hiccup while polling: try again
        })
        .then(function (current) {
          if (current && current.status === 'paid') return paid(current);
          if (current && (current.status === 'closed' || current.status === 'failed')) {
            notice('failed', '订单没有完成', '这笔订单已关闭。如已扣款，款项会原路退回。');
            return null;
          }
          if (Date.now() >= deadline) {
            notice('pending', '支付结果确认中', '微信支付的结果还没有送达。稍后点「刷新」查看，请勿重复付款。',
              function () { refresh(); });
            return null;
          }
          return sleep(delay).then(function () {
            delay = Math.min(delay * 1.5, 3000);
            return poll();
          });
        });
    };
    return poll();
  }

  function paid(order) {
    return loadProfile().then(function (p) {
      if (order.order_type === 'member') {
        notice('success', '支付成功，会员已开通', '有效期至 ' + formatDate(p.member_expire_at) + '，赠送的 ' +
          p.prices.member_bonus_credits + ' 张额度已到账。');
      } else {
        notice('success', '支付成功，额度已到账', '已到账 ' + order.credits_amount + ' 张，当前可用 ' +
          p.available_credits + ' 张。');
      }
    });
  }

  function refresh() {
    return loadProfile().then(function () { $('notice').hidden = true; }, function (err) {
      if (err instanceof ApiError && err.status === 401) signIn();
    });
  }

  // ---------- devices ----------

  function loadDevices() {
    return api('GET', '/api/v1/member/devices').then(renderDevices, function (err) {
      if (err instanceof ApiError && err.status === 401) {
        signIn();
        return;
      }
      $('device-list').innerHTML = '';
      $('devices-state').textContent = '设备列表加载失败，请稍后刷新页面。';
      $('devices-state').hidden = false;
    });
  }

  function renderDevices(answer) {
    var list = $('device-list');
    list.innerHTML = '';
    answer.devices.forEach(function (device) {
      var item = document.createElement('li');
      item.className = 'device';
      item.setAttribute('data-client-id', device.client_id);
      var info = document.createElement('div');
      info.className = 'device-info';
      var name = document.createElement('strong');
      name.textContent = device.client_id;
      var since = document.createElement('small');
      since.textContent = '登录于 ' + formatDate(device.bound_at);
      info.appendChild(name);
      info.appendChild(since);
      var button = document.createElement('button');
      button.className = 'btn ghost small';
      button.type = 'button';
      button.textContent = '退出登录';
      button.addEventListener('click', function () { signOutDevice(item, button, device.client_id); });
      item.appendChild(info);
      item.appendChild(button);
      list.appendChild(item);
    });
    var empty = answer.devices.length === 0;
    $('devices-state').textContent = empty ? '还没有设备登录。在芯图相册 App 中用微信扫码即可登录。' : '';
    $('devices-state').hidden = !empty;
  }

  function signOutDevice(item, button, clientId) {
    // The first tap only asks: a slip of the thumb must not sign a computer out.
    if (!item.classList.contains('confirming')) {
      item.classList.add('confirming');
      button.textContent = '确认退出';
      return;
    }
    button.disabled = true;
    api('POST', '/api/v1/member/devices/' + encodeURIComponent(clientId) + '/sign-out')
      .then(function () {
        notice('signed_out', '设备已退出登录', clientId + ' 需要重新扫码才能继续使用。');
      }, function (err) {
        if (err instanceof ApiError && err.status === 401) {
          signIn();
          return;
        }
        if (err instanceof ApiError && err.status === 404) {
          notice('signed_out', '设备已退出登录', '这台设备已经不在登录状态。');
          return;
        }
        notice('error', '退出登录没有成功', err instanceof ApiError && err.status === 0
          ? '网络连接失败，请检查网络后重试。' : '服务暂时不可用，请稍后重试。');
      })
      .then(loadDevices);
  }

  // ---------- expiry reminders ----------

  function setReminders(enabled) {
    var box = $('reminders');
    var hint = $('reminders-hint');
    box.disabled = true;
    api('POST', '/api/v1/member/reminders', { enabled: enabled }).then(function (profile) {
      state.profile = profile;
      render();
      hint.className = 'hint';
      hint.textContent = enabled ? '已开启：会员到期前几天，公众号会给您发一条提醒。' : '已关闭到期提醒。';
    }, function (err) {
      if (err instanceof ApiError && err.status === 401) {
        signIn();
        return;
      }
      box.checked = !enabled;
      box.disabled = false;
      hint.className = 'hint bad';
      hint.textContent = '设置没有保存，请稍后重试。';
    });
  }

  // ---------- my data ----------

  function eraseAccount() {
    var box = $('erase-box');
    var button = $('erase');
    var hint = $('erase-hint');
    // The first tap only asks: closing the account cannot be undone.
    if (!box.classList.contains('confirming')) {
      box.classList.add('confirming');
      button.textContent = '确认注销（不可恢复）';
      hint.className = 'hint bad';
      hint.textContent = '剩余 ' + ((state.profile && state.profile.remaining_credits) || 0) + ' 张额度将作废。再点一次确认注销。';
      return;
    }
    button.disabled = true;
    api('POST', '/api/v1/member/erasure', { confirm: true }).then(function (erased) {
      $('erased-text').textContent = '您的个人数据已删除，所有设备已退出登录' +
        (erased.credits_forfeited > 0 ? '，' + erased.credits_forfeited + ' 张额度已作废' : '') + '。';
      show('erased');
    }, function (err) {
      if (err instanceof ApiError && err.status === 401) {
        signIn();
        return;
      }
      button.disabled = false;
      box.classList.remove('confirming');
      button.textContent = '注销账户并删除数据';
      hint.className = 'hint bad';
      hint.textContent = err instanceof ApiError && err.code === 'erasure_blocked'
        ? '您有未完成的支付、退款或修图，请等它们结束（未支付的订单约 30 分钟后自动关闭）再注销。'
        : '注销没有成功，请稍后重试。';
    });
  }

  // ---------- wiring ----------

  function bind() {
    $('buy-member').addEventListener('click', function () { buy({ order_type: 'member' }); });
    $('reminders').addEventListener('change', function () { setReminders($('reminders').checked); });
    $('erase').addEventListener('click', eraseAccount);
    $('buy-credits').addEventListener('click', function () {
      state.qty = clampQty($('qty').value);
      renderQty();
      buy({ order_type: 'credits', credits_amount: state.qty });
    });
    Array.prototype.forEach.call(document.querySelectorAll('.chip'), function (chip) {
      chip.addEventListener('click', function () {
        state.qty = clampQty(chip.getAttribute('data-amount'));
        renderQty();
      });
    });
    $('qty-minus').addEventListener('click', function () { state.qty = clampQty(state.qty - 1); renderQty(); });
    $('qty-plus').addEventListener('click', function () { state.qty = clampQty(state.qty + 1); renderQty(); });
    $('qty').addEventListener('change', function () { state.qty = clampQty($('qty').value); renderQty(); });
    $('retry').addEventListener('click', function () { location.reload(); });
    $('copy-link').addEventListener('click', function () {
      var input = $('page-link');
      var done = function () { $('copy-link').textContent = '已复制'; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, function () { input.select(); });
      } else {
        input.select();
        try { if (document.execCommand('copy')) done(); } catch (e) { /* selected for the user */ }
      }
    });
  }

  function start() {
    // Coming back from WeChat's OAuth page the address keeps its "#wechat_redirect": drop it.
    if (location.hash === '#wechat_redirect' && window.history && history.replaceState) {
      history.replaceState(null, '', location.pathname + location.search);
    }
    bind();
    if (!inWeChat()) {
      $('page-link').value = location.origin + PAGE_PATH;
      show('outside');
      return;
    }
    loadProfile().then(loadDevices).catch(function (err) {
      if (err instanceof ApiError && err.status === 401) {
        signIn();
        return;
      }
      showError('页面加载失败', err instanceof ApiError && err.status === 0
        ? '网络连接失败，请检查网络后重试。' : '服务暂时不可用，请稍后重试。');
    });
  }

  start();
})();
